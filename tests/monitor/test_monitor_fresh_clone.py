"""The committed sample reports stay in monitoring/, real runs there are ignored by git, and a
real run's trend counts only runs against the same target: never the samples."""

import shutil
import subprocess

import pytest

from testkit import ROOT
from wme_monitor.trend import split_by_target, target_of


def git(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the project's git checkout")
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30, check=False
    )


def committed_samples() -> list[str]:
    listed = git("ls-files", "monitoring/report-*.json")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_samples_are_committed_and_real_runs_are_ignored():
    samples = committed_samples()
    assert len(samples) == 3
    # A report a real run would write next to them.
    ignored = git("check-ignore", "--quiet", "monitoring/report-20991231T235959.999Z.json")
    assert ignored.returncode == 0, "real runs' reports must be ignored by git"
    assert git("check-ignore", "--quiet", "monitoring/report.schema.json").returncode == 1


def test_first_run_on_a_fresh_clone_has_no_trend_from_the_samples(
    monitor_project, make_api, run_monitor, clean_env, api_key
):
    for sample in committed_samples():
        shutil.copy(ROOT / sample, monitor_project / sample)
    api = make_api()
    env = clean_env(MONITOR_API_KEY=api_key)
    script = monitor_project / "scripts" / "service_monitor.py"

    # The default report directory: the project's monitoring/, beside the samples.
    first = run_monitor(
        "--base-url", api.url, env=env, script=script,
        report_dir=monitor_project / "monitoring", add_report_dir=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    trend = first.report["trend"]
    assert trend["previous_reports"] == 0 and trend["other_targets"] == 3
    for check in first.report["checks"]:
        entry = trend["checks"][check["name"]]
        assert entry["previous_status"] is None and entry["consecutive_failures"] == 0
        assert entry["samples"] == 1
        assert entry["p95_ms"] == entry["p50_ms"] == check["latency_ms"]["total"]

    second = run_monitor(
        "--base-url", api.url, env=env, script=script,
        report_dir=monitor_project / "monitoring", add_report_dir=False,
    )  # fmt: skip
    trend = second.report["trend"]
    assert trend["previous_reports"] == 1 and trend["other_targets"] == 3
    assert {e["previous_status"] for e in trend["checks"].values()} == {"pass"}
    assert {e["samples"] for e in trend["checks"].values()} == {2}


def test_another_base_url_is_another_target_another_threshold_is_not(make_api, run_monitor):
    api, other_api = make_api(), make_api()
    run_monitor("--base-url", api.url)
    other = run_monitor("--base-url", other_api.url)
    assert other.report["trend"]["previous_reports"] == 0
    assert other.report["trend"]["other_targets"] == 1
    # A trailing slash is the same URL; a new threshold is the same target, tuned.
    same = run_monitor("--base-url", api.url + "/", "--threshold-ms", "900")
    assert same.report["trend"]["previous_reports"] == 1
    assert same.report["trend"]["other_targets"] == 1
    assert {e["previous_status"] for e in same.report["trend"]["checks"].values()} == {"pass"}


def test_target_of_reads_the_base_url():
    report = {"config": {"base_url": "http://svc:8080/", "threshold_ms": 500}}
    assert target_of(report) == "http://svc:8080"
    assert target_of({"config": {"base_url": 3}}) is None
    assert target_of({"checks": []}) is None
    same, others = split_by_target(
        [report, {"config": {"base_url": "http://svc:8081", "threshold_ms": 500}}, {}],
        "http://svc:8080",
    )
    assert same == [report] and others == 2
