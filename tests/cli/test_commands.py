"""The `flask --app service` commands: each exists, runs under Flask's test runner as under the
real `flask` entry point, and the audit purge keeps recent rows."""

from __future__ import annotations

import os
import subprocess

import pytest

from testkit import BASE_SETTINGS, ROOT, fresh_database, invoke


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["load-sample-data"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["build-sample-sql"],
        ["purge-audit-logs"],
    ],
)
def test_cli_command_exists(runner, command):
    result = runner.invoke(args=[*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage:")
    assert " ".join(command) in result.output.splitlines()[0]


def test_cli_lists_the_commands(runner):
    result = runner.invoke(args=["--help"])
    assert result.exit_code == 0
    for name in ("migrate", "load-sample-data", "keys", "build-sample-sql", "purge-audit-logs"):
        assert f"  {name} " in result.output


def test_commands_run_under_the_test_runner_without_a_pushed_context(runner, seeded):
    # `runner.invoke` runs `app.cli` without the app context that the `flask` CLI pushes: a command
    # reading current_app must push it itself (flask.cli.with_appcontext), or it cannot be tested
    # (nor embedded) this way.
    for args in (["keys", "list"], ["load-sample-data"], ["migrate"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, repr(result.exception))


def test_real_flask_cli_runs_migrate_and_keys_list():
    # The console entry point itself, as an operator types it.
    with fresh_database(migrate=False) as name:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DB_")},
            **{k: str(v) for k, v in BASE_SETTINGS.items()},
            "DB_NAME": name,
        }
        flask = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "service"]
        migrate = subprocess.run(
            [*flask, "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert migrate.returncode == 0, migrate.stderr
        assert "migration(s) applied" in migrate.stdout
        listed = subprocess.run(
            [*flask, "keys", "list"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split()[:2] == ["id", "key"]


def test_purge_audit_logs_deletes_only_rows_older_than_retention(app, seeded):
    # The three sample rows are from 2023; one recent row must survive.
    seeded.run(
        "INSERT INTO audit_logs (key_id, key_prefix, method, endpoint, response_code, "
        "response_time_ms, `timestamp`) VALUES (2, 'key_DE', 'GET', '/api/export', 200, 5, "
        "UTC_TIMESTAMP(3))"
    )
    result = invoke(app, "purge-audit-logs", "--days", "30", "--pause", "0")
    assert result.exit_code == 0, result.output
    assert "purged 3 audit row(s)" in result.output
    assert seeded.value("SELECT COUNT(*) FROM audit_logs") == 1


# ---------------------------------------------------------------------------------------------
# Where settings come from
