"""The run as Prometheus metrics, for node_exporter's textfile collector.

Text exposition format 0.0.4: HELP and TYPE before each family, no client-side timestamps (the
collector refuses them; the run's time is a metric of its own). Labels are bounded: `target` is the
configured base URL, `check` one of the three checks, `reason` one of the fixed reason codes.
"""

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .reasons import ReasonCode

PREFIX = "wme_monitor_"

_FAMILIES: dict[str, str] = {
    "check_up": "1 if the check passed in the last run (retries included), 0 if it failed.",
    "check_latency_seconds": (
        "Total latency of the check's last attempt, request start to last body byte; "
        "NaN when no complete response arrived."
    ),
    "check_flaky": "1 if the check passed only after a failed attempt in the last run.",
    "check_failure_reason": (
        "1 for each reason the check failed for in the last run, 0 for the other reasons."
    ),
    "run_success": "1 if every check passed in the last run, 0 otherwise.",
    "run_duration_seconds": "Duration of the last run.",
    "run_timestamp_seconds": "Unix time at which the last run started.",
}


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"


def _value(number: float | None) -> str:
    if number is None or not math.isfinite(number):
        return "NaN"
    if float(number).is_integer():
        return str(int(number))
    return repr(round(float(number), 6))  # microseconds; no float noise such as 0.0532000000004


def _family(name: str, samples: Iterable[tuple[str, float | None]]) -> list[str]:
    full = PREFIX + name
    lines = [f"# HELP {full} {_FAMILIES[name]}", f"# TYPE {full} gauge"]
    lines += [f"{full}{labels} {_value(value)}" for labels, value in samples]
    return lines


def render(report: Mapping[str, Any], started_at: datetime) -> str:
    target = report["config"]["base_url"]
    checks = report["checks"]

    def per_check(value) -> list[tuple[str, float | None]]:
        return [(_labels(target=target, check=c["name"]), value(c)) for c in checks]

    def latency_s(check: Mapping[str, Any]) -> float | None:
        total = check["latency_ms"]["total"]
        return None if total is None else total / 1000

    failed_for = {c["name"]: {r["code"] for r in c["reasons"]} for c in checks}
    reasons = [
        (
            _labels(target=target, check=c["name"], reason=code.value),
            1.0 if code.value in failed_for[c["name"]] else 0.0,
        )
        for c in checks
        for code in ReasonCode
    ]
    run = _labels(target=target)
    lines = [
        *_family("check_up", per_check(lambda c: 1.0 if c["status"] == "pass" else 0.0)),
        *_family("check_latency_seconds", per_check(latency_s)),
        *_family("check_flaky", per_check(lambda c: 1.0 if c["flaky"] else 0.0)),
        *_family("check_failure_reason", reasons),
        *_family("run_success", [(run, 1.0 if report["status"] == "pass" else 0.0)]),
        *_family("run_duration_seconds", [(run, report["duration_ms"] / 1000)]),
        *_family("run_timestamp_seconds", [(run, started_at.timestamp())]),
    ]
    return "\n".join(lines) + "\n"
