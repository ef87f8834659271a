"""The monitor run as a subprocess against real local servers."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

CHECK_NAMES = ["health", "export", "audit"]


def junit_suite(path: Path) -> ET.Element:
    # The file is our own output, not untrusted input.
    suite = ET.parse(path).getroot().find("testsuite")  # noqa: S314
    assert suite is not None
    return suite


def assert_bounded(run, server, limit_s: float) -> None:
    """From the first connection to process exit (interpreter start-up, slow
    on a loaded machine, is not part of the deadline) within limit + 1.5 s."""
    assert server.first_accept, "the monitor never connected"
    assert run.ended - server.first_accept < limit_s + 1.5
    assert run.report["duration_ms"] < (limit_s + 1.0) * 1000


def assert_valid(run, validator) -> dict[str, Any]:
    report = run.report
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return report


def test_healthy_service_passes(make_api, run_monitor, validator, api_key):
    api = make_api()
    run = run_monitor("--base-url", api.url, junit=True)

    assert run.returncode == 0, run.stdout + run.stderr
    report = assert_valid(run, validator)
    assert report["status"] == "pass"
    assert report["summary"] == {"total": 3, "passed": 3, "failed": 0, "flaky": 0}
    assert [c["name"] for c in report["checks"]] == CHECK_NAMES
    for check in report["checks"]:
        assert check["http_status"] == 200
        assert check["reasons"] == [] and check["flaky"] is False
        assert len(check["attempts"]) == 1
        latency = check["latency_ms"]
        assert 0 <= latency["ttfb"] <= latency["total"] < 500
        assert check["bytes"] > 0
        assert check["url"] == api.url + {"health": "/health"}.get(
            check["name"], "/api/" + check["name"]
        )
    assert report["config"]["api_key"] == "[REDACTED]"
    assert report["config"]["report_dir"] == str(run.report_dir)

    # The key went to the API routes only, every request on its own connection.
    assert "X-API-Key" not in api.requests_for("/health")[0].headers
    for path in ("/api/export", "/api/audit"):
        assert api.requests_for(path)[0].headers["X-API-Key"] == api_key
    assert all(r.headers.get("Connection") == "close" for r in api.seen)
    assert len({r.client_port for r in api.seen}) == 3

    lines = run.stdout.splitlines()
    for name in CHECK_NAMES:
        assert any(line.startswith("PASS") and f" {name} " in line for line in lines)
    assert "Overall: PASS" in run.stdout
    assert str(run.report_paths[-1]) in run.stdout
    assert run.stderr == ""

    suite = junit_suite(run.junit)
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.findall("testcase")] == CHECK_NAMES


def test_report_file_name_and_atomic_write_leave_no_temp_files(make_api, run_monitor):
    run = run_monitor("--base-url", make_api().url)
    files = [p.name for p in run.report_dir.iterdir()]
    assert len(files) == 1
    name = files[0]
    assert ":" not in name
    started = run.report["started_at"]  # 2026-11-26T07:15:30.123Z
    expected = "report-" + started.replace("-", "").replace(":", "") + ".json"
    assert name == expected


def test_slow_route_fails_with_latency_exceeded(make_api, run_monitor, validator):
    api = make_api(export=dict(body=b'{"data": []}', delay=0.3))
    run = run_monitor("--base-url", api.url, "--threshold-ms", "150")

    assert run.returncode == 1
    assert_valid(run, validator)
    export = run.check("export")
    assert export["status"] == "fail" and export["http_status"] == 200
    (reason,) = export["reasons"]
    assert reason["code"] == "latency_exceeded"
    assert reason["limit_ms"] == 150
    assert reason["measured_ms"] >= 300
    assert reason["measured_ms"] == export["latency_ms"]["total"]
    assert run.check("health")["status"] == "pass"
    assert "FAIL  export" in run.stdout and "latency_exceeded" in run.stdout


def test_server_error_fails_with_http_status(make_api, run_monitor, validator):
    api = make_api(audit=dict(status=500, body=b'{"error": "boom"}'))
    run = run_monitor("--base-url", api.url)

    assert run.returncode == 1
    report = assert_valid(run, validator)
    assert report["summary"]["failed"] == 1
    (reason,) = run.check("audit")["reasons"]
    assert reason["code"] == "http_status"
    assert reason["measured"] == 500 and reason["expected"] == 200
    assert run.check("audit")["http_status"] == 500


def test_wrong_bodies_fail_with_body_invalid(make_api, run_monitor, validator):
    api = make_api(
        health=dict(body=b"NOPE", content_type="text/plain"),
        export=dict(body=b'{"items": []}'),
        audit=dict(body=b"<html>not json</html>", content_type="text/html"),
    )
    run = run_monitor("--base-url", api.url)

    assert run.returncode == 1
    assert_valid(run, validator)
    for name in CHECK_NAMES:
        assert run.codes(name) == ["body_invalid"], name
    assert run.check("health")["reasons"][0]["measured"] == "NOPE"


def test_export_data_must_be_an_array(make_api, run_monitor):
    run = run_monitor("--base-url", make_api(export=dict(body=b'{"data": {"id": 1}}')).url)
    assert run.returncode == 1
    assert run.codes("export") == ["body_invalid"]
    assert run.check("export")["reasons"][0]["measured"] == "object"


def test_nothing_listening_is_connection_refused(refused_url, run_monitor, validator):
    run = run_monitor("--base-url", refused_url)

    assert run.returncode == 1
    assert_valid(run, validator)
    for name in CHECK_NAMES:
        assert run.codes(name) == ["connection_refused"]
        assert run.check(name)["http_status"] is None
    assert sum(line.startswith("FAIL ") for line in run.stdout.splitlines()) == 3
    assert "Overall: FAIL" in run.stdout
    # Refused at once, not waited out until the 2000 ms timeout (the run's own clock: the
    # interpreter's start-up on a loaded machine is not part of the claim).
    assert run.report["duration_ms"] < 1500


def test_unresolvable_host_is_dns(run_monitor, validator):
    run = run_monitor("--base-url", "http://nonexistent.invalid")
    assert run.returncode == 1
    assert_valid(run, validator)
    for name in CHECK_NAMES:
        assert run.codes(name) == ["dns"]


def test_hanging_server_times_out_at_the_deadline(make_raw, run_monitor, validator):
    server = make_raw("hang")
    run = run_monitor("--base-url", server.url, "--timeout-ms", "1000")

    assert run.returncode == 1
    assert_valid(run, validator)
    assert_bounded(run, server, 1.0)
    for name in CHECK_NAMES:
        (reason,) = run.check(name)["reasons"]
        assert reason["code"] == "timeout"
        assert reason["limit_ms"] == 1000
        assert 1000 <= reason["measured_ms"] < 1500


def test_dripping_body_times_out_at_the_default_deadline(make_raw, run_monitor, validator):
    """A body that keeps trickling never trips requests' per-read timeout;
    the monitor's own deadline must cut it at 2 s (the default)."""
    server = make_raw("drip_body")
    run = run_monitor("--base-url", server.url)

    assert run.returncode == 1
    report = assert_valid(run, validator)
    assert report["config"]["timeout_ms"] == 2000
    assert_bounded(run, server, 2.0)
    for name in CHECK_NAMES:
        check = run.check(name)
        assert check["http_status"] == 200  # headers came, the body never finished
        assert check["latency_ms"]["total"] is None
        assert check["latency_ms"]["ttfb"] is not None
        (reason,) = check["reasons"]
        assert reason["code"] == "timeout" and reason["limit_ms"] == 2000
        assert 2000 <= reason["measured_ms"] < 2500


def test_dripping_headers_time_out_too(make_raw, run_monitor):
    server = make_raw("drip_headers")
    run = run_monitor("--base-url", server.url, "--timeout-ms", "800")
    assert run.returncode == 1
    assert_bounded(run, server, 0.8)
    for name in CHECK_NAMES:
        assert run.codes(name) == ["timeout"]


def test_run_deadline_bounds_the_whole_run(make_raw, run_monitor, validator):
    server = make_raw("hang")
    run = run_monitor("--base-url", server.url, "--timeout-ms", "5000", "--run-timeout-ms", "700")

    assert run.returncode == 1
    assert_valid(run, validator)
    assert_bounded(run, server, 0.7)
    for name in CHECK_NAMES:
        (reason,) = run.check(name)["reasons"]
        assert reason["code"] == "run_deadline"
        assert reason["limit_ms"] == 700


def test_retry_after_reset_connection_passes_as_flaky(make_raw, run_monitor, validator):
    server = make_raw("reset_first_then_serve")
    run = run_monitor("--base-url", server.url, "--retries", "2")

    assert run.returncode == 0, run.stdout
    report = assert_valid(run, validator)
    assert report["summary"] == {"total": 3, "passed": 3, "failed": 0, "flaky": 3}
    for name in CHECK_NAMES:
        check = run.check(name)
        assert check["status"] == "pass" and check["flaky"] is True
        first, second = check["attempts"]
        assert first["status"] == "fail"
        assert [r["code"] for r in first["reasons"]] == ["connection_error"]
        assert first["error"]
        assert second["status"] == "pass" and second["http_status"] == 200
    assert "flaky" in run.stdout


def test_reset_connection_without_retries_fails(make_raw, run_monitor):
    run = run_monitor("--base-url", make_raw("reset_first_then_serve").url)
    assert run.returncode == 1
    for name in CHECK_NAMES:
        assert run.codes(name) == ["connection_error"]
        assert len(run.check(name)["attempts"]) == 1


def test_http_errors_are_not_retried(make_api, run_monitor):
    api = make_api(export=dict(status=503, body=b"{}"))
    run = run_monitor("--base-url", api.url, "--retries", "3")
    assert run.returncode == 1
    assert len(run.check("export")["attempts"]) == 1
    assert len(api.requests_for("/api/export")) == 1


def test_trend_across_consecutive_runs(make_api, run_monitor, validator, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    # Foreign and broken files in the directory are ignored.
    (reports / "report-garbage.json").write_text("{not json")
    (reports / "report-foreign.json").write_text(json.dumps({"hello": "world"}))
    (reports / "notes.txt").write_text("ignore me")

    failing = make_api(health=dict(status=503, body=b"down", content_type="text/plain"))
    trends = []
    for _ in range(3):
        run = run_monitor("--base-url", failing.url)
        assert run.returncode == 1
        trends.append(assert_valid(run, validator)["trend"])
    # The same target recovers: its history continues.
    failing.set_route("health", body=b"OK", content_type="text/plain")
    run = run_monitor("--base-url", failing.url)
    assert run.returncode == 0
    trends.append(assert_valid(run, validator)["trend"])

    health = [t["checks"]["health"] for t in trends]
    assert [h["consecutive_failures"] for h in health] == [1, 2, 3, 0]
    assert [h["previous_status"] for h in health] == [None, "fail", "fail", "fail"]
    assert [h["samples"] for h in health] == [1, 2, 3, 4]
    assert [t["previous_reports"] for t in trends] == [0, 1, 2, 3]
    export = [t["checks"]["export"] for t in trends]
    assert [e["consecutive_failures"] for e in export] == [0, 0, 0, 0]
    assert [e["previous_status"] for e in export] == [None, "pass", "pass", "pass"]
    assert all(e["p50_ms"] is not None and e["p50_ms"] <= e["p95_ms"] for e in export)
    assert len(list(reports.glob("report-2*.json"))) == 4


def test_api_key_never_reaches_any_output(make_api, run_monitor, api_key):
    """The fake server echoes the key in a body, an error body and the status
    line's reason phrase; none of it may surface anywhere."""
    api = make_api(
        health=dict(body=lambda key: f"OK {key}".encode(), content_type="text/plain"),
        export=dict(
            status=500,
            body=lambda key: json.dumps({"error": f"bad key {key}"}).encode(),
            reason=lambda key: f"Rejected {key}",
        ),
        audit=dict(body=lambda key: json.dumps({"echo": key}).encode() + b"trailing junk"),
    )
    run = run_monitor("--base-url", api.url, junit=True)

    assert run.returncode == 1
    # The key was sent (the API routes would have answered 401 otherwise).
    assert api.requests_for("/api/export")[0].headers["X-API-Key"] == api_key
    assert run.check("export")["http_status"] == 500
    assert run.codes("audit") == ["body_invalid"]
    health_reason = run.check("health")["reasons"][0]
    assert health_reason["code"] == "body_invalid"
    assert "[REDACTED]" in health_reason["measured"]
    assert "[REDACTED]" in run.check("export")["reasons"][0]["message"]

    outputs = {
        "stdout": run.stdout,
        "stderr": run.stderr,
        "junit": run.junit.read_text(),
        **{p.name: p.read_text() for p in run.report_dir.iterdir()},
    }
    for where, text in outputs.items():
        assert api_key not in text, where
        assert api_key[:16] not in text, where  # not even a prefix


def test_flags_win_over_environment(make_api, refused_url, run_monitor, clean_env, api_key):
    api = make_api()
    env = clean_env(
        MONITOR_API_KEY=api_key,
        MONITOR_BASE_URL=refused_url,
        MONITOR_THRESHOLD_MS="1234",
        MONITOR_TIMEOUT_MS="1500",
        MONITOR_RETRIES="1",
    )
    run = run_monitor("--base-url", api.url, "--retries", "0", env=env)
    assert run.returncode == 0
    config = run.report["config"]
    assert config["base_url"] == api.url
    assert config["threshold_ms"] == 1234 and config["timeout_ms"] == 1500
    assert config["retries"] == 0


def test_environment_configures_everything(make_api, run_monitor, clean_env, tmp_path, api_key):
    api = make_api()
    env_dir = tmp_path / "from-env"
    env = clean_env(
        MONITOR_API_KEY=api_key,
        MONITOR_BASE_URL=api.url,
        MONITOR_REPORT_DIR=str(env_dir),
        MONITOR_JUNIT=str(tmp_path / "env-junit.xml"),
        MONITOR_RUN_TIMEOUT_MS="4000",
    )
    run = run_monitor(env=env, report_dir=env_dir, add_report_dir=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.report["config"]["run_timeout_ms"] == 4000
    assert (tmp_path / "env-junit.xml").is_file()


def test_default_key_is_sent_when_none_is_configured(make_api, run_monitor, clean_env):
    api = make_api()
    api.key = "key_DEF456"
    run = run_monitor("--base-url", api.url, env=clean_env())
    assert run.returncode == 0, run.stdout


def test_failing_junit_reports_failures(make_api, run_monitor):
    api = make_api(export=dict(status=502, body=b"{}"))
    run = run_monitor("--base-url", api.url, junit=True)
    assert run.returncode == 1
    suite = junit_suite(run.junit)
    assert suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases["export"].find("failure")
    assert failure is not None and failure.get("type") == "http_status"
    assert cases["health"].find("failure") is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--base-url", "ftp://x"], "http(s) URL"),
        (["--threshold-ms", "abc"], "--threshold-ms"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2(args, needle, run_monitor, tmp_path):
    # More cases run in process in test_monitor_logic.py; these prove the real exit status.
    run = run_monitor(*args)
    assert run.returncode == 2
    assert needle in run.stderr
    assert "error:" in run.stderr
    assert run.stdout == ""
    assert not (tmp_path / "reports").exists()


def test_bad_environment_value_exits_2(run_monitor, clean_env, api_key):
    run = run_monitor(env=clean_env(MONITOR_API_KEY=api_key, MONITOR_RETRIES="many"))
    assert run.returncode == 2
    assert "MONITOR_RETRIES" in run.stderr


def test_quiet_prints_nothing_on_success_and_json_prints_the_report(make_api, run_monitor):
    api = make_api()
    quiet = run_monitor("--base-url", api.url, "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == ""
    as_json = run_monitor("--base-url", api.url, "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["run_id"] == as_json.report["run_id"]


def test_unwritable_report_dir_exits_3(make_api, run_monitor, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    run = run_monitor("--base-url", make_api().url, report_dir=Path(blocker) / "reports")
    assert run.returncode == 3
    assert "could not write report" in run.stderr
    assert "PASS" in run.stdout
