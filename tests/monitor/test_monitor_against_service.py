"""The brief's monitoring validation, against the real service (scripts/serve):
healthy -> exit 0; service stopped -> exit 1; an endpoint slower than the threshold -> exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import ROOT

pytestmark = pytest.mark.e2e
MONITOR = ROOT / "scripts" / "service_monitor.py"


def run_monitor(base_url: str, report_dir: Path, *extra: str) -> tuple[int, dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_API_KEY"] = "key_DEF456"
    done = subprocess.run(
        [
            sys.executable,
            str(MONITOR),
            "--base-url",
            base_url,
            "--report-dir",
            str(report_dir),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    reports = sorted(report_dir.glob("report-*.json"))
    report = json.loads(reports[-1].read_text()) if reports else {}
    output = done.stdout + done.stderr + "".join(p.read_text() for p in reports)
    assert "key_DEF456" not in output, "the key never reaches any output"
    return done.returncode, report, done.stdout


def test_healthy_then_stopped_service(sample_database, serve, tmp_path):
    served = serve(sample_database, workers=2)
    # Generous bounds: the claim is the exit code of a healthy service, not its speed on a busy
    # test machine (the latency rule has its own test below and in test_monitor_cli.py).
    slack = ("--threshold-ms", "10000", "--timeout-ms", "15000", "--run-timeout-ms", "30000")
    code, report, stdout = run_monitor(served.url, tmp_path, *slack)
    assert code == 0, stdout
    assert report["status"] == "pass"
    assert {c["name"]: c["http_status"] for c in report["checks"]} == {
        "health": 200,
        "export": 200,
        "audit": 200,
    }
    served.stop()
    code, report, stdout = run_monitor(served.url, tmp_path)
    assert code == 1
    assert report["status"] == "fail"
    for check in report["checks"]:
        assert [r["code"] for r in check["reasons"]] == ["connection_refused"]
    assert report["trend"]["checks"]["health"]["previous_status"] == "pass"


def test_an_endpoint_slower_than_the_threshold_fails(sample_database, serve, tmp_path):
    served = serve(sample_database, workers=2)
    # A threshold below any real round trip: every check is "slow" by the monitor's rule.
    code, report, _ = run_monitor(served.url, tmp_path, "--threshold-ms", "0.001")
    assert code == 1
    assert all("latency_exceeded" in [r["code"] for r in c["reasons"]] for c in report["checks"])


def test_committed_sample_reports_follow_the_schema():
    import jsonschema

    schema = json.loads((ROOT / "monitoring" / "report.schema.json").read_text())
    reports = sorted((ROOT / "monitoring").glob("report-*.json"))
    assert {json.loads(p.read_text())["status"] for p in reports} == {"pass", "fail"}
    for path in reports:
        jsonschema.validate(json.loads(path.read_text()), schema)
        assert "key_DEF456" not in path.read_text()
