"""MONITOR_* in the project's .env, as cron runs it: flags, then the environment, then .env.

Each test runs a copy of the monitor alone in a project folder (conftest's monitor_project), so the
.env it reads is the test's own, and nothing from service/ is at hand."""

import re
import shutil

from testkit import ROOT


def write_env(project, **values: str) -> None:
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def run_copy(run_monitor, project, *args, env, cwd=None):
    """The copied script, from another working directory (the .env is found from the script)."""
    return run_monitor(
        *args,
        env=env,
        script=project / "scripts" / "service_monitor.py",
        report_dir=project / "monitoring",
        add_report_dir=False,
        cwd=cwd,
    )


def test_cron_run_takes_its_settings_and_key_from_dotenv(
    monitor_project, make_api, run_monitor, clean_env, api_key, tmp_path
):
    api = make_api()
    write_env(
        monitor_project,
        MONITOR_API_KEY=api_key,
        MONITOR_BASE_URL=api.url,
        MONITOR_THRESHOLD_MS="1234",
        MONITOR_RETRIES="2",
        MONITOR_PROMETHEUS_FILE=str(tmp_path / "wme.prom"),
        DB_PASS="not-the-monitors-business",
    )
    run = run_copy(run_monitor, monitor_project, env=clean_env(dotenv=True))

    # The API answers 401 without the right key: passing proves the key came from .env.
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == ""
    config = run.report["config"]
    assert config["base_url"] == api.url
    assert config["threshold_ms"] == 1234 and config["retries"] == 2
    assert config["prometheus_file"] == str(tmp_path / "wme.prom")
    assert (tmp_path / "wme.prom").is_file()
    assert api.requests_for("/api/export")[0].headers["X-API-Key"] == api_key


def test_environment_wins_over_dotenv_and_flags_win_over_both(
    monitor_project, make_api, refused_url, run_monitor, clean_env, api_key
):
    api = make_api()
    write_env(
        monitor_project,
        MONITOR_API_KEY="key_WRONG_from_dotenv",
        MONITOR_BASE_URL=refused_url,
        MONITOR_THRESHOLD_MS="1234",
        MONITOR_TIMEOUT_MS="1500",
        MONITOR_RETRIES="3",
    )
    env = clean_env(
        dotenv=True,
        MONITOR_API_KEY=api_key,
        MONITOR_THRESHOLD_MS="777",
        MONITOR_RETRIES="",  # set but empty: the default, not .env's 3
    )
    run = run_copy(run_monitor, monitor_project, "--base-url", api.url, env=env)

    assert run.returncode == 0, run.stdout + run.stderr
    config = run.report["config"]
    assert config["base_url"] == api.url  # flag over .env
    assert config["threshold_ms"] == 777  # environment over .env
    assert config["timeout_ms"] == 1500  # .env where nothing else says
    assert config["retries"] == 0
    assert "key_WRONG" not in run.stdout + run.stderr


def test_a_bad_value_in_dotenv_is_a_usage_error_naming_the_variable(
    monitor_project, run_monitor, clean_env
):
    write_env(monitor_project, MONITOR_TIMEOUT_MS="soon")
    run = run_copy(run_monitor, monitor_project, env=clean_env(dotenv=True))
    assert run.returncode == 2
    assert "MONITOR_TIMEOUT_MS" in run.stderr and run.stdout == ""


def test_an_unreadable_dotenv_warns_once_and_the_run_goes_on(
    monitor_project, make_api, run_monitor, clean_env, api_key
):
    (monitor_project / ".env").write_bytes(b"MONITOR_BASE_URL=\xff\xfe\n")  # not UTF-8
    api = make_api()
    env = clean_env(dotenv=True, MONITOR_API_KEY=api_key)
    run = run_copy(run_monitor, monitor_project, "--base-url", api.url, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    (line,) = run.stderr.splitlines()
    assert line.startswith("warning: ") and ".env not read" in line


def test_env_example_tells_the_truth(monitor_project, make_api, run_monitor, clean_env):
    """Copied to .env, .env.example configures the monitor with exactly the documented defaults,
    its key included, and names every variable the monitor reads (one per option, plus the key)."""
    shutil.copy(ROOT / ".env.example", monitor_project / ".env")
    api = make_api()
    api.key = "key_DEF456"  # the example's key
    run = run_copy(run_monitor, monitor_project, "--base-url", api.url, env=clean_env(dotenv=True))
    assert run.returncode == 0, run.stdout + run.stderr
    config = run.report["config"]
    assert (config["threshold_ms"], config["timeout_ms"], config["retries"]) == (500, 2000, 0)
    assert config["run_timeout_ms"] == 3000
    assert config["report_dir"] == str(monitor_project / "monitoring")
    assert config["junit"] is None and config["prometheus_file"] is None

    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^(MONITOR_\w+)=", example, flags=re.MULTILINE))
    help_text = run_copy(run_monitor, monitor_project, "--help", env=clean_env()).stdout
    options = set(re.findall(r"--([a-z][a-z-]+) [A-Z]+", help_text))
    assert documented == {"MONITOR_API_KEY"} | {
        "MONITOR_" + o.upper().replace("-", "_") for o in options
    }
    assert "environment or from this .env" in example
