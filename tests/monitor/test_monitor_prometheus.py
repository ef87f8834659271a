"""--prometheus-file: node_exporter textfile output, parsed by the official client's parser."""

import math
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

CHECK_NAMES = ["health", "export", "audit"]
REASON_CODES = [
    "connection_refused",
    "dns",
    "timeout",
    "connection_error",
    "tls",
    "http_status",
    "latency_exceeded",
    "body_invalid",
    "run_deadline",
]
FAMILIES = {
    "wme_monitor_check_up",
    "wme_monitor_check_latency_seconds",
    "wme_monitor_check_flaky",
    "wme_monitor_check_failure_reason",
    "wme_monitor_run_success",
    "wme_monitor_run_duration_seconds",
    "wme_monitor_run_timestamp_seconds",
}


def parse(path: Path) -> dict:
    """{family name: family}, after checking the text format's own rules the parser is lenient
    about: HELP and TYPE before every family's samples, no client-side timestamps."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for family in families.values():
        assert family.type == "gauge", family.name
        assert family.documentation, family.name
        assert all(sample.timestamp is None for sample in family.samples)
    lines = text.splitlines()
    for name in families:
        help_at = lines.index(next(x for x in lines if x.startswith(f"# HELP {name} ")))
        assert lines[help_at + 1] == f"# TYPE {name} gauge"
        first_sample = next(i for i, x in enumerate(lines) if x.startswith(name + "{"))
        assert first_sample > help_at + 1
    return families


def by_check(family) -> dict[str, float]:
    return {s.labels["check"]: s.value for s in family.samples}


def test_textfile_holds_each_check_its_latency_and_reasons(make_api, run_monitor, tmp_path):
    api = make_api(export=dict(status=503, body=b'{"error": "down"}'))
    textfile = tmp_path / "textfile_collector" / "wme_monitor.prom"
    run = run_monitor("--base-url", api.url, "--prometheus-file", str(textfile))

    assert run.returncode == 1, run.stdout + run.stderr
    families = parse(textfile)
    assert set(families) == FAMILIES
    report = run.report
    assert report["config"]["prometheus_file"] == str(textfile)

    assert by_check(families["wme_monitor_check_up"]) == {"health": 1, "export": 0, "audit": 1}
    latency = by_check(families["wme_monitor_check_latency_seconds"])
    for check in report["checks"]:
        assert latency[check["name"]] == pytest.approx(check["latency_ms"]["total"] / 1000)
    assert by_check(families["wme_monitor_check_flaky"]) == dict.fromkeys(CHECK_NAMES, 0)

    reasons = families["wme_monitor_check_failure_reason"].samples
    assert len(reasons) == len(CHECK_NAMES) * len(REASON_CODES)  # bounded: fixed lists only
    assert {s.labels["reason"] for s in reasons} == set(REASON_CODES)
    firing = [(s.labels["check"], s.labels["reason"]) for s in reasons if s.value == 1]
    assert firing == [("export", "http_status")]
    assert all(s.value in (0, 1) for s in reasons)

    for family in families.values():
        for sample in family.samples:
            assert sample.labels["target"] == api.url
            assert set(sample.labels) <= {"target", "check", "reason"}
    (success,) = families["wme_monitor_run_success"].samples
    assert success.value == 0
    (duration,) = families["wme_monitor_run_duration_seconds"].samples
    assert duration.value == pytest.approx(report["duration_ms"] / 1000)
    (started,) = families["wme_monitor_run_timestamp_seconds"].samples
    started_at = datetime.fromisoformat(report["started_at"].replace("Z", "+00:00"))
    assert abs(started.value - started_at.timestamp()) < 0.001

    # Written atomically: nothing but the file itself is left in the directory, readable by
    # node_exporter's user.
    assert [p.name for p in textfile.parent.iterdir()] == ["wme_monitor.prom"]
    assert stat.S_IMODE(os.stat(textfile).st_mode) == 0o644


def test_no_response_is_down_with_nan_latency_and_the_reason(
    refused_url, run_monitor, clean_env, tmp_path, api_key
):
    textfile = tmp_path / "wme_monitor.prom"
    env = clean_env(MONITOR_API_KEY=api_key, MONITOR_PROMETHEUS_FILE=str(textfile))
    run = run_monitor("--base-url", refused_url, env=env)

    assert run.returncode == 1
    families = parse(textfile)
    assert by_check(families["wme_monitor_check_up"]) == dict.fromkeys(CHECK_NAMES, 0)
    latency = by_check(families["wme_monitor_check_latency_seconds"])
    assert all(math.isnan(value) for value in latency.values())
    firing = {
        (s.labels["check"], s.labels["reason"])
        for s in families["wme_monitor_check_failure_reason"].samples
        if s.value == 1
    }
    assert firing == {(name, "connection_refused") for name in CHECK_NAMES}


def test_a_passing_run_replaces_the_previous_file(make_api, run_monitor, refused_url, tmp_path):
    textfile = tmp_path / "wme_monitor.prom"
    run_monitor("--base-url", refused_url, "--prometheus-file", str(textfile))
    first = parse(textfile)["wme_monitor_run_timestamp_seconds"].samples[0].value
    run = run_monitor("--base-url", make_api().url, "--prometheus-file", str(textfile))

    assert run.returncode == 0
    families = parse(textfile)
    assert by_check(families["wme_monitor_check_up"]) == dict.fromkeys(CHECK_NAMES, 1)
    assert families["wme_monitor_run_success"].samples[0].value == 1
    assert families["wme_monitor_run_timestamp_seconds"].samples[0].value > first
    assert not any(s.value for s in families["wme_monitor_check_failure_reason"].samples)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unwritable_prometheus_file_exits_3_and_still_writes_the_report(
    make_api, run_monitor, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    run = run_monitor("--base-url", make_api().url, "--prometheus-file", str(blocker / "m.prom"))
    assert run.returncode == 3
    assert "could not write Prometheus file" in run.stderr
    assert run.report["status"] == "pass"
    assert "PASS" in run.stdout
