"""The JSON report of a run (schema: monitoring/report.schema.json), its file, and the console
summary made from it."""

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .checks import CheckResult
from .config import Config
from .exit_codes import ExitCode
from .trend import TREND_HISTORY, compute_trend, split_by_target, target_of
from .units import fmt_num, format_rfc3339, round_ms

SCHEMA_VERSION = "1.1"


def report_filename(dt: datetime) -> str:
    """report-YYYYMMDDTHHMMSS.mmmZ.json: sorts by time, no ':' in the name."""
    dt = dt.astimezone(UTC)
    return dt.strftime("report-%Y%m%dT%H%M%S.") + f"{dt.microsecond // 1000:03d}Z.json"


def _looks_like_report(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("schema_version"), str)
        and data["schema_version"].split(".")[0] == SCHEMA_VERSION.split(".")[0]
        and isinstance(data.get("started_at"), str)
        and isinstance(data.get("checks"), list)
    )


def load_previous_reports(report_dir: Path, limit: int = TREND_HISTORY) -> list[dict[str, Any]]:
    """Earlier reports in report_dir, oldest first; unreadable or foreign
    report-*.json files are skipped."""
    try:
        paths = sorted(report_dir.glob("report-*.json"))
    except OSError:
        return []
    reports: list[dict[str, Any]] = []
    for path in reversed(paths):
        if len(reports) >= limit:
            break
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _looks_like_report(data):
            reports.append(data)
    reports.sort(key=lambda r: r["started_at"])
    return reports


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory, fsync, then rename, so
    readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename too (best effort)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def unique_report_path(report_dir: Path, started_at: datetime) -> Path:
    # Two runs in the same millisecond: bump the name by 1 ms so it stays
    # unique and sortable.
    moment = started_at
    while (report_dir / report_filename(moment)).exists():
        moment += timedelta(milliseconds=1)
    return report_dir / report_filename(moment)


def build_report(
    config: Config,
    results: Sequence[CheckResult],
    *,
    run_id: str,
    started_at: datetime,
    finished_at: datetime,
    duration_ms: float,
    previous_reports: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report; the trend uses only those previous reports made against the same target."""
    checks = [r.to_dict() for r in results]
    passed = sum(1 for r in results if r.passed)
    config_report = config.to_report()
    target = target_of({"config": config_report})
    assert target is not None  # our own config always names one
    same, others = split_by_target(previous_reports, target)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started_at": format_rfc3339(started_at),
        "finished_at": format_rfc3339(finished_at),
        "duration_ms": round_ms(duration_ms),
        "config": config_report,
        "status": "pass" if passed == len(results) else "fail",
        "summary": {
            "total": len(results),
            "passed": passed,
            "failed": len(results) - passed,
            "flaky": sum(1 for r in results if r.flaky),
        },
        "checks": checks,
        "trend": compute_trend(same, checks, other_targets=others),
    }


def exit_code_for(report: Mapping[str, Any]) -> ExitCode:
    return ExitCode.OK if report["status"] == "pass" else ExitCode.CHECK_FAILED


def _fmt_latency(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def format_console(report: Mapping[str, Any], report_path: Path | None) -> str:
    cfg = report["config"]
    lines = [
        f"Service monitor {cfg['base_url']} (threshold {fmt_num(cfg['threshold_ms'])} ms, "
        f"timeout {fmt_num(cfg['timeout_ms'])} ms, retries {cfg['retries']})"
    ]
    for check in report["checks"]:
        word = "PASS" if check["status"] == "pass" else "FAIL"
        http = "---" if check["http_status"] is None else str(check["http_status"])
        latency = check["latency_ms"]
        line = (
            f"{word}  {check['name']:<8} {http:>3}  total {_fmt_latency(latency['total']):>10}"
            f"  ttfb {_fmt_latency(latency['ttfb']):>10}"
        )
        if check["reasons"]:
            line += "  " + "; ".join(f"{r['code']}: {r['message']}" for r in check["reasons"])
        attempts = len(check["attempts"])
        if check["flaky"]:
            line += f"  (flaky: passed on attempt {attempts})"
        elif attempts > 1:
            line += f"  ({attempts} attempts)"
        lines.append(line)
    summary = report["summary"]
    lines.append(
        f"Overall: {report['status'].upper()} ({summary['passed']}/{summary['total']} passed, "
        f"{summary['failed']} failed, {summary['flaky']} flaky) in {report['duration_ms']:.0f} ms"
    )
    lines.append(f"Report: {report_path if report_path else '(not written)'}")
    return "\n".join(lines)
