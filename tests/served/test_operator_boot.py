"""An operator's usual mistakes at boot, through the real scripts (subprocesses): a bad setting
stops the boot once, before any worker starts, with one line per problem naming the setting and
what it accepts, never the value; scripts/run reads `.env` as the app does, says what it starts
and fails fast with the cause; a second scripts/run on a taken port says how to choose another.

The scripts run in a temporary copy of the project (so a `.env` can be written), sharing this
checkout's virtual environment."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.config import Settings
from testkit import (
    BASE_SETTINGS,
    ROOT,
    TEST_SECRET,
    free_port,
    fresh_database,
    start_service,
    wait_until,
)

pytestmark = pytest.mark.e2e
SETTING_NAMES = {f.name for f in dataclasses.fields(Settings)}
SECRET = "s3cretvalue"


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project with this checkout's .venv (and its install stamps) linked in."""
    copy = tmp_path / "project"
    copy.mkdir()
    for folder in ("service", "scripts", "sql"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy2(ROOT / name, copy / name)  # keeps the date: no reinstall
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def environment(**settings: str) -> dict[str, str]:
    """The caller's environment without any of the service's settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    # The secret that has no default, as a configured machine has it (else scripts/run
    # generates one into the copy's .env first, and these tests are about the other settings).
    env["KEY_HASH_SECRET"] = TEST_SECRET
    env.update(settings)
    return env


def run(project: Path, script: str, timeout: float = 120, **settings: str):
    started = time.monotonic()
    done = subprocess.run(
        [str(project / "scripts" / script)],
        cwd=project,
        env=environment(**settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - started


def test_bad_setting_in_dotenv_stops_serve_with_one_line(project):
    (project / ".env").write_text(f"DB_PORT=abc\nDB_PASS={SECRET}\n")
    done, _ = run(project, "serve", PORT=str(free_port()))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "bad setting DB_PORT (from .env): it accepts a whole number from 1 to 65535\n"
    )


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        (
            "WEB_CONCURRENCY",
            "two",
            "bad setting WEB_CONCURRENCY (from the environment): it accepts empty "
            "(2 x cores + 1), or a whole number of workers from 1 to 256",
        ),
        (
            "GUNICORN_TIMEOUT",
            "",
            "bad setting GUNICORN_TIMEOUT (from the environment) is empty: it accepts a whole "
            "number of seconds from 1 to 3600; remove it for the default, 60",
        ),
        (
            "PORT",
            "80a",
            "bad setting PORT (from the environment): it accepts a whole number from 1 to 65535",
        ),
    ],
)
def test_bad_gunicorn_setting_stops_serve_before_gunicorn_starts(project, name, value, line):
    settings = {"PORT": str(free_port()), name: value}
    done, _ = run(project, "serve", **settings)
    assert done.returncode == 2
    assert (done.stdout, done.stderr) == ("", line + "\n")


def test_every_bad_setting_is_one_line_and_no_value_is_echoed(project):
    (project / ".env").write_text(f"DB_TIME_ZONE={SECRET}\nLOG_LEVEL={SECRET}\n")
    done, _ = run(project, "serve", DB_PORT="abc", WEB_CONCURRENCY=SECRET, GUNICORN_TIMEOUT="")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert [line.split(" ")[2] for line in lines] == [
        "DB_PORT",
        "DB_TIME_ZONE",
        "LOG_LEVEL",
        "WEB_CONCURRENCY",
        "GUNICORN_TIMEOUT",
    ]
    assert all(line.startswith("bad setting ") for line in lines)
    assert SECRET not in done.stderr and "abc" not in done.stderr
    assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr


def test_run_checks_settings_before_anything_else(project):
    done, _ = run(project, "run", DB_PORT="abc")
    assert done.returncode == 2
    assert (done.stdout, done.stderr) == (
        "",
        "bad setting DB_PORT (from the environment): it accepts a whole number from 1 to 65535\n",
    )


def closed_port() -> int:
    """A loopback port nothing listens on (and is not the local MariaDB's)."""
    return free_port()


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_run_on_a_port_where_no_server_listens_fails_fast_with_the_cause(project, where):
    port = closed_port()
    if where == ".env":
        (project / ".env").write_text(f"DB_PORT={port}\n")
        done, elapsed = run(project, "run")
    else:
        done, elapsed = run(project, "run", DB_PORT=str(port))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"cannot use the database server: connection refused at 127.0.0.1:{port} "
        "(no server listens there)\n"
        "start it, or point DB_HOST/DB_PORT (in .env or the environment) at a running one\n"
    )
    assert "starting" not in done.stderr  # it starts no server it cannot serve that address
    assert elapsed < 30, "fails in seconds (before: 61 s); generous for a loaded machine"


def test_a_second_run_while_one_is_serving_says_the_port_is_taken(project, tmp_path):
    with fresh_database() as name:
        db = {k: str(v) for k, v in BASE_SETTINGS.items()} | {"DB_NAME": name}
        first = start_service(name, tmp_path / "first.log", workers=1)
        try:
            done, _ = run(project, "run", **db, PORT=str(first.port), BIND_HOST="127.0.0.1")
        finally:
            first.stop()
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"port {first.port} on 127.0.0.1 is taken (is another scripts/run or server already "
        "serving there?); choose another port, e.g. PORT="
    )
    assert lines[0].endswith(" scripts/run")


def test_run_starts_the_service_when_everything_is_right(project, tmp_path):
    # The happy path of the same script, so the checks above are not simply always failing.
    with fresh_database(migrate=False) as name:
        port = free_port()
        env = environment(
            **{k: str(v) for k, v in BASE_SETTINGS.items()},
            DB_NAME=name,
            PORT=str(port),
            BIND_HOST="127.0.0.1",
            WEB_CONCURRENCY="1",
        )
        log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - the child writes it
        process = subprocess.Popen(
            [str(project / "scripts" / "run")],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            def answers() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        return True
                except OSError:
                    assert process.poll() is None, (tmp_path / "run.log").read_text()
                    return False

            wait_until(answers, timeout=90, interval=0.2)
        finally:
            process.terminate()
            process.wait(timeout=40)
            log.close()
    text = (tmp_path / "run.log").read_text()
    assert "migration(s) applied" in text and "sample data loaded" in text
    assert "starting it" not in text
