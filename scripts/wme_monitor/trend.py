"""The trend: how each check fared in earlier runs against the same target.

A target is a base URL (without credentials or a trailing slash): runs against another service say
nothing about this one. So reports of other targets in the same directory (the committed samples in
monitoring/, a staging monitor sharing the folder) are counted as `other_targets` and otherwise
ignored, and a check's history only counts entries for the same URL. A changed threshold or timeout
does not start a new history: latencies stay comparable, and each report records its own settings.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .units import round_ms

TREND_WINDOW = 20  # runs (including this one) for the latency percentiles
TREND_HISTORY = 100  # previous reports read at most (bounds consecutive_failures)

Target = str


def target_of(report: Mapping[str, Any]) -> Target | None:
    """The base URL a report was made against, or None when it does not say."""
    config = report.get("config")
    base_url = config.get("base_url") if isinstance(config, Mapping) else None
    return base_url.rstrip("/") if isinstance(base_url, str) else None


def split_by_target(
    reports: Sequence[Mapping[str, Any]], target: Target
) -> tuple[list[Mapping[str, Any]], int]:
    """The reports of `target` (order kept) and how many others there were."""
    same = [r for r in reports if target_of(r) == target]
    return same, len(reports) - len(same)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Percentile with linear interpolation between closest ranks (numpy's
    default); None for no values."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _check_entries(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for item in report.get("checks", []):
        if (
            isinstance(item, Mapping)
            and isinstance(item.get("name"), str)
            and item.get("status") in ("pass", "fail")
        ):
            out[item["name"]] = item
    return out


def _total_latency(check: Mapping[str, Any] | None) -> float | None:
    if not check:
        return None
    latency = check.get("latency_ms")
    total = latency.get("total") if isinstance(latency, Mapping) else None
    if isinstance(total, (int, float)) and not isinstance(total, bool) and math.isfinite(total):
        return float(total)
    return None


def _same_endpoint(entry: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    if not entry:
        return False
    # Entries that do not name their URL (hand-made history) count.
    return entry.get("url", current.get("url")) == current.get("url")


def compute_trend(
    previous_reports: Sequence[Mapping[str, Any]],
    current_checks: Sequence[Mapping[str, Any]],
    window: int = TREND_WINDOW,
    *,
    other_targets: int = 0,
) -> dict[str, Any]:
    """Trend per check from earlier reports of the same target (oldest first) plus this run.

    previous_status is the check's status in the most recent earlier report
    that has it; consecutive_failures counts this run and the unbroken run of
    failures right before it; p50/p95 use total latency of the last `window`
    runs including this one (runs without a complete response are skipped).
    """
    history = [_check_entries(r) for r in previous_reports]
    checks: dict[str, Any] = {}
    for current in current_checks:
        name = current["name"]
        past = [h.get(name) for h in history]
        past = [entry if _same_endpoint(entry, current) else None for entry in past]
        previous_status = next((c["status"] for c in reversed(past) if c), None)
        consecutive = 0
        if current["status"] == "fail":
            consecutive = 1
            for entry in reversed(past):
                if not entry or entry["status"] != "fail":
                    break
                consecutive += 1
        recent = past[-(window - 1) :] if window > 1 else []
        latencies = [x for x in (_total_latency(c) for c in [*recent, current]) if x is not None]
        checks[name] = {
            "previous_status": previous_status,
            "consecutive_failures": consecutive,
            "samples": len(latencies),
            "p50_ms": round_ms(percentile(latencies, 50)),
            "p95_ms": round_ms(percentile(latencies, 95)),
        }
    return {
        "window": window,
        "previous_reports": len(previous_reports),
        "other_targets": other_targets,
        "checks": checks,
    }
