#!/usr/bin/env python3
"""Service monitor for the Wikimedia enterprise export API.

Checks GET /health, GET /api/export and GET /api/audit concurrently, each on a
fresh connection and under a hard deadline, writes a JSON report (and
optionally JUnit XML) and exits 0 only when every check passed.

Meant for cron and CI; see docs/monitor.md. The API key is read only from the
MONITOR_API_KEY environment variable so it never shows up in process lists,
and it is never written to any output.
"""

import argparse
import contextlib
import enum
import json
import math
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions

SCHEMA_VERSION = "1.0"
USER_AGENT = "wme-service-monitor/1.0"
REDACTED = "[REDACTED]"

# The default report directory is the repo's monitoring/ (parent of scripts/),
# resolved from this file so cron jobs work from any working directory.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPORT_DIR = REPO_ROOT / "monitoring"

DEFAULT_BASE_URL = "http://localhost:8080"
DEFAULT_THRESHOLD_MS = 500
DEFAULT_TIMEOUT_MS = 2000
DEFAULT_RETRIES = 0
DEFAULT_API_KEY = "key_DEF456"
MAX_RETRIES = 10

RETRY_DELAY_S = 0.2  # short pause so a restarting server gets a moment
RUN_DEADLINE_SLACK_MS = 1000  # added to timeout x attempts for the default run deadline
ABORT_GRACE_S = 0.05  # how long to let an aborted request unwind before moving on
FINALIZE_GRACE_S = 0.25  # main thread waits this long past the run deadline for checks
CHUNK_SIZE = 16 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024  # the body is held in memory for validation
EXCERPT_CHARS = 80
TREND_WINDOW = 20  # runs (including this one) for the latency percentiles
TREND_HISTORY = 100  # previous reports read at most (bounds consecutive_failures)


class ExitCode(enum.IntEnum):
    OK = 0  # every check passed (possibly after retries)
    CHECK_FAILED = 1  # at least one check failed
    USAGE = 2  # bad flag, value or environment variable
    OUTPUT_ERROR = 3  # the report or JUnit file could not be written


class ReasonCode(enum.StrEnum):
    CONNECTION_REFUSED = "connection_refused"
    DNS = "dns"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    LATENCY_EXCEEDED = "latency_exceeded"
    BODY_INVALID = "body_invalid"
    RUN_DEADLINE = "run_deadline"


# Only failures that a second try can plausibly fix are retried.
RETRYABLE = frozenset(
    {
        ReasonCode.CONNECTION_REFUSED,
        ReasonCode.DNS,
        ReasonCode.TIMEOUT,
        ReasonCode.CONNECTION_ERROR,
    }
)


class UsageError(Exception):
    """A flag or MONITOR_* variable has a bad value (exit code 2)."""


class DeadlineExceeded(Exception):
    """Raised between body chunks when the per-attempt deadline has passed."""


class BodyTooLarge(Exception):
    """The body exceeded MAX_BODY_BYTES."""


# --------------------------------------------------------------------------
# Pure data and logic
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
    measured: Any = None
    expected: Any = None
    measured_ms: float | None = None
    limit_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code.value, "message": self.message}
        for key in ("measured", "expected", "measured_ms", "limit_ms"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def scrub(text: str, secret: str) -> str:
    """Replace every occurrence of the secret in untrusted text."""
    if not secret or not text:
        return text
    return text.replace(secret, REDACTED)


def excerpt(body: bytes, secret: str, limit: int = EXCERPT_CHARS) -> str:
    """A short single-line excerpt of a body, scrubbed before truncation so a
    key cut at the boundary cannot leak a prefix."""
    text = scrub(body.decode("utf-8", "replace"), secret)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validate_health(body: bytes, secret: str) -> Reason | None:
    if body.strip() == b"OK":
        return None
    return Reason(
        ReasonCode.BODY_INVALID,
        "expected body 'OK'",
        measured=excerpt(body, secret),
        expected="OK",
    )


def _parse_json(body: bytes) -> tuple[Any, Reason | None]:
    try:
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError) as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            # Position only: the parser's message never includes body text.
            where = f" (line {exc.lineno} column {exc.colno})"
        return None, Reason(ReasonCode.BODY_INVALID, f"body is not valid JSON{where}")


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null"


def _validate_export(body: bytes, secret: str) -> Reason | None:
    data, problem = _parse_json(body)
    if problem:
        return problem
    if not isinstance(data, dict) or "data" not in data:
        return Reason(
            ReasonCode.BODY_INVALID,
            "JSON body has no 'data' array",
            measured="missing" if isinstance(data, dict) else _json_type(data),
            expected="array",
        )
    if not isinstance(data["data"], list):
        return Reason(
            ReasonCode.BODY_INVALID,
            "'data' is not an array",
            measured=_json_type(data["data"]),
            expected="array",
        )
    return None


def _validate_audit(body: bytes, secret: str) -> Reason | None:
    return _parse_json(body)[1]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    path: str
    needs_key: bool
    validate: Callable[[bytes, str], Reason | None]
    method: str = "GET"


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("health", "/health", False, _validate_health),
    CheckSpec("export", "/api/export", True, _validate_export),
    CheckSpec("audit", "/api/audit", True, _validate_audit),
)


@dataclass
class Observation:
    """What one HTTP attempt saw, before judging it."""

    elapsed_ms: float
    http_status: int | None = None
    reason_phrase: str = ""
    ttfb_ms: float | None = None
    total_ms: float | None = None  # only set when the whole body arrived
    body: bytes | None = None
    nbytes: int = 0
    error: BaseException | None = None
    deadline_hit: bool = False


@dataclass(frozen=True)
class Deadline:
    """Which deadline bounded an attempt, for the reason it produces."""

    kind: ReasonCode  # TIMEOUT or RUN_DEADLINE
    limit_ms: float
    measured_ms: float


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    # requests wraps urllib3 which wraps socket errors, in .args, .reason
    # (MaxRetryError) and __cause__/__context__; walk all of them.
    seen: set[int] = set()
    queue: deque[BaseException] = deque([exc])
    while queue:
        current = queue.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(getattr(current, "args", ()))
        queue.extend(x for x in linked if isinstance(x, BaseException))


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError for
    # historical reasons, although it means "connect failed".
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(
        exc,
        (
            requests.exceptions.Timeout,
            urllib3.exceptions.TimeoutError,
            TimeoutError,
            DeadlineExceeded,
        ),
    )


_CLASSIFIERS: tuple[tuple[Callable[[BaseException], bool], ReasonCode, str], ...] = (
    (lambda e: isinstance(e, DeadlineExceeded), ReasonCode.TIMEOUT, "deadline exceeded"),
    (
        lambda e: isinstance(e, BodyTooLarge),
        ReasonCode.BODY_INVALID,
        f"body larger than {MAX_BODY_BYTES} bytes",
    ),
    (
        lambda e: isinstance(
            e, (ssl.SSLError, requests.exceptions.SSLError, urllib3.exceptions.SSLError)
        ),
        ReasonCode.TLS,
        "TLS handshake or certificate verification failed",
    ),
    (
        lambda e: isinstance(e, (socket.gaierror, urllib3.exceptions.NameResolutionError)),
        ReasonCode.DNS,
        "host name could not be resolved",
    ),
    (
        lambda e: isinstance(e, ConnectionRefusedError),
        ReasonCode.CONNECTION_REFUSED,
        "connection refused (nothing listening at that host and port)",
    ),
    (_is_timeout, ReasonCode.TIMEOUT, "timed out"),
    (
        lambda e: isinstance(e, requests.exceptions.ContentDecodingError),
        ReasonCode.BODY_INVALID,
        "body could not be decoded",
    ),
)


def classify_exception(exc: BaseException) -> Reason:
    """Map an exception raised while requesting to a named reason."""
    chain = list(_exception_chain(exc))
    for predicate, code, message in _CLASSIFIERS:
        if any(predicate(e) for e in chain):
            return Reason(code, message)
    # Name the innermost exception type (never its text, which is untrusted).
    return Reason(
        ReasonCode.CONNECTION_ERROR,
        f"connection failed or closed before a complete response ({type(chain[-1]).__name__})",
    )


def describe_exception(exc: BaseException, secret: str) -> str:
    """Short "Type: message" of the most specific low-level cause (e.g.
    ConnectionRefusedError rather than requests' wrapper), key-scrubbed: a
    message can quote server bytes, such as a malformed status line."""
    chain = list(_exception_chain(exc))
    low_level = [e for e in chain if type(e).__module__.split(".")[0] in _LOW_LEVEL_MODULES]
    cause = low_level[0] if low_level else chain[-1]
    text = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    return scrub(text, secret)[:300]


_LOW_LEVEL_MODULES = frozenset({"builtins", "socket", "ssl", "http"})


def deadline_reason(deadline: Deadline) -> Reason:
    if deadline.kind is ReasonCode.RUN_DEADLINE:
        message = (
            f"run deadline of {_fmt_num(deadline.limit_ms)} ms reached before the check finished"
        )
    else:
        message = f"no complete response within {_fmt_num(deadline.limit_ms)} ms"
    return Reason(
        deadline.kind,
        message,
        measured_ms=_ms(deadline.measured_ms),
        limit_ms=deadline.limit_ms,
    )


def evaluate(
    spec: CheckSpec,
    obs: Observation,
    threshold_ms: float,
    deadline: Deadline,
    secret: str,
) -> list[Reason]:
    """Judge one attempt; an empty list means it passed."""
    if obs.deadline_hit:
        return [deadline_reason(deadline)]
    if obs.error is not None:
        reason = classify_exception(obs.error)
        if reason.code is ReasonCode.TIMEOUT:
            # requests' own per-socket timeout is set to the remaining time,
            # so it firing means our deadline was reached as well.
            return [deadline_reason(deadline)]
        return [reason]
    reasons: list[Reason] = []
    if obs.http_status != 200:
        phrase = scrub(obs.reason_phrase or "", secret)[:EXCERPT_CHARS]
        reasons.append(
            Reason(
                ReasonCode.HTTP_STATUS,
                f"expected HTTP 200, got {obs.http_status} {phrase}".rstrip(),
                measured=obs.http_status,
                expected=200,
            )
        )
    else:
        problem = spec.validate(obs.body or b"", secret)
        if problem:
            reasons.append(problem)
    if obs.total_ms is not None and obs.total_ms > threshold_ms:
        reasons.append(
            Reason(
                ReasonCode.LATENCY_EXCEEDED,
                f"took {obs.total_ms:.1f} ms, threshold is {_fmt_num(threshold_ms)} ms",
                measured_ms=_ms(obs.total_ms),
                limit_ms=threshold_ms,
            )
        )
    return reasons


def is_retryable(reasons: Sequence[Reason]) -> bool:
    return any(r.code in RETRYABLE for r in reasons)


@dataclass
class Attempt:
    number: int
    started_at: str
    elapsed_ms: float
    http_status: int | None
    total_ms: float | None
    ttfb_ms: float | None
    nbytes: int
    reasons: list[Reason]
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "started_at": self.started_at,
            "status": "pass" if self.passed else "fail",
            "http_status": self.http_status,
            "latency_ms": {"total": _ms(self.total_ms), "ttfb": _ms(self.ttfb_ms)},
            "elapsed_ms": _ms(self.elapsed_ms),
            "bytes": self.nbytes,
            "reasons": [r.to_dict() for r in self.reasons],
            "error": self.error,
        }


@dataclass
class CheckResult:
    name: str
    method: str
    url: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def passed(self) -> bool:
        return self.final.passed

    @property
    def flaky(self) -> bool:
        return self.passed and any(not a.passed for a in self.attempts[:-1])

    def to_dict(self) -> dict[str, Any]:
        final = self.final
        return {
            "name": self.name,
            "method": self.method,
            "url": self.url,
            "http_status": final.http_status,
            "latency_ms": {"total": _ms(final.total_ms), "ttfb": _ms(final.ttfb_ms)},
            "bytes": final.nbytes,
            "status": "pass" if self.passed else "fail",
            "flaky": self.flaky,
            "reasons": [r.to_dict() for r in final.reasons],
            "attempts": [a.to_dict() for a in self.attempts],
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _fmt_num(value: float) -> str:
    """1500 -> "1500", 1500.0 -> "1500", 12.25 -> "12.25"."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


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


def compute_trend(
    previous_reports: Sequence[Mapping[str, Any]],
    current_checks: Sequence[Mapping[str, Any]],
    window: int = TREND_WINDOW,
) -> dict[str, Any]:
    """Trend per check from earlier reports (oldest first) plus this run.

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
            "p50_ms": _ms(percentile(latencies, 50)),
            "p95_ms": _ms(percentile(latencies, 95)),
        }
    return {"window": window, "previous_reports": len(previous_reports), "checks": checks}


def format_rfc3339(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def report_filename(dt: datetime) -> str:
    """report-YYYYMMDDTHHMMSS.mmmZ.json: sorts by time, no ':' in the name."""
    dt = dt.astimezone(UTC)
    return dt.strftime("report-%Y%m%dT%H%M%S.") + f"{dt.microsecond // 1000:03d}Z.json"


def display_url(url: str) -> str:
    """The URL without user:password@, for output."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def check_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


@dataclass(frozen=True)
class Config:
    base_url: str = DEFAULT_BASE_URL
    threshold_ms: float = DEFAULT_THRESHOLD_MS
    timeout_ms: float = DEFAULT_TIMEOUT_MS
    run_timeout_ms: float = DEFAULT_TIMEOUT_MS + RUN_DEADLINE_SLACK_MS
    retries: int = DEFAULT_RETRIES
    report_dir: Path = DEFAULT_REPORT_DIR
    junit: Path | None = None
    api_key: str = field(default=DEFAULT_API_KEY, repr=False)  # keep it out of reprs
    quiet: bool = False
    json_output: bool = False

    def to_report(self) -> dict[str, Any]:
        return {
            "base_url": display_url(self.base_url),
            "threshold_ms": self.threshold_ms,
            "timeout_ms": self.timeout_ms,
            "run_timeout_ms": self.run_timeout_ms,
            "retries": self.retries,
            "report_dir": str(self.report_dir),
            "junit": None if self.junit is None else str(self.junit),
            "api_key": REDACTED,
        }


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
    checks = [r.to_dict() for r in results]
    passed = sum(1 for r in results if r.passed)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started_at": format_rfc3339(started_at),
        "finished_at": format_rfc3339(finished_at),
        "duration_ms": _ms(duration_ms),
        "config": config.to_report(),
        "status": "pass" if passed == len(results) else "fail",
        "summary": {
            "total": len(results),
            "passed": passed,
            "failed": len(results) - passed,
            "flaky": sum(1 for r in results if r.flaky),
        },
        "checks": checks,
        "trend": compute_trend(previous_reports, checks),
    }


def exit_code_for(report: Mapping[str, Any]) -> ExitCode:
    return ExitCode.OK if report["status"] == "pass" else ExitCode.CHECK_FAILED


def _fmt_latency(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def format_console(report: Mapping[str, Any], report_path: Path | None) -> str:
    cfg = report["config"]
    lines = [
        f"Service monitor {cfg['base_url']} (threshold {_fmt_num(cfg['threshold_ms'])} ms, "
        f"timeout {_fmt_num(cfg['timeout_ms'])} ms, retries {cfg['retries']})"
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


def build_junit(report: Mapping[str, Any]) -> ET.Element:
    summary = report["summary"]
    suites = ET.Element("testsuites", name="service_monitor")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="service_monitor",
        tests=str(summary["total"]),
        failures=str(summary["failed"]),
        errors="0",
        skipped="0",
        time=f"{report['duration_ms'] / 1000:.3f}",
        timestamp=report["started_at"],
    )
    for check in report["checks"]:
        final = check["attempts"][-1]
        case = ET.SubElement(
            suite,
            "testcase",
            classname="service_monitor",
            name=check["name"],
            time=f"{final['elapsed_ms'] / 1000:.3f}",
        )
        if check["reasons"]:
            text = "\n".join(f"{r['code']}: {r['message']}" for r in check["reasons"])
            failure = ET.SubElement(
                case,
                "failure",
                message="; ".join(r["code"] for r in check["reasons"]),
                type=check["reasons"][0]["code"],
            )
            failure.text = text
        out = ET.SubElement(case, "system-out")
        out.text = (
            f"{check['method']} {check['url']} http_status={check['http_status']} "
            f"total_ms={check['latency_ms']['total']} ttfb_ms={check['latency_ms']['ttfb']} "
            f"attempts={len(check['attempts'])} flaky={str(check['flaky']).lower()}"
        )
    return suites


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

ENV_PREFIX = "MONITOR_"


def parse_base_url(value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise UsageError(f"{value!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{value!r} is not an http(s) URL like http://localhost:8080")
    if any(c.isspace() for c in value):
        raise UsageError(f"{value!r} contains whitespace")
    if parts.query or parts.fragment:
        raise UsageError(f"{value!r} must not have a query or fragment")
    if port == 0:
        raise UsageError(f"{value!r} has port 0")
    return value


def parse_ms(value: str, *, allow_zero: bool = False) -> int | float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{value!r} is not a number of milliseconds") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise UsageError(f"{value!r} must be a positive number of milliseconds")
    return int(number) if number.is_integer() else number


def parse_retries(value: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{value!r} is not a whole number") from None
    if not 0 <= number <= MAX_RETRIES:
        raise UsageError(f"{value!r} must be between 0 and {MAX_RETRIES}")
    return number


def default_run_timeout_ms(timeout_ms: float, retries: int) -> int | float:
    total = timeout_ms * (retries + 1) + RETRY_DELAY_S * 1000 * retries + RUN_DEADLINE_SLACK_MS
    return int(total) if float(total).is_integer() else round(total, 3)


def _pick(flag_value: str | None, env: Mapping[str, str], name: str) -> tuple[str | None, str]:
    """Flag beats environment; an empty variable counts as unset."""
    if flag_value is not None:
        return flag_value, "--" + name.lower().replace("_", "-")
    env_value = env.get(ENV_PREFIX + name)
    if env_value is not None and env_value.strip() != "":
        return env_value, ENV_PREFIX + name
    return None, ""


def resolve_config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    """Merge flags and MONITOR_* variables (flags win) and validate them."""

    def get(name: str, parse: Callable[[str], Any], default: Any) -> Any:
        raw, source = _pick(getattr(args, name.lower()), env, name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except UsageError as exc:
            raise UsageError(f"{source}: {exc}") from None

    base_url = get("BASE_URL", parse_base_url, DEFAULT_BASE_URL)
    threshold_ms = get("THRESHOLD_MS", parse_ms, DEFAULT_THRESHOLD_MS)
    timeout_ms = get("TIMEOUT_MS", parse_ms, DEFAULT_TIMEOUT_MS)
    retries = get("RETRIES", parse_retries, DEFAULT_RETRIES)
    run_timeout_ms = get("RUN_TIMEOUT_MS", parse_ms, None)
    if run_timeout_ms is None:
        run_timeout_ms = default_run_timeout_ms(timeout_ms, retries)
    # Relative paths given by flag or variable are relative to the cwd, as usual.
    report_dir = get("REPORT_DIR", lambda v: Path(v).expanduser(), DEFAULT_REPORT_DIR)
    junit = get("JUNIT", lambda v: Path(v).expanduser(), None)
    return Config(
        base_url=base_url,
        threshold_ms=threshold_ms,
        timeout_ms=timeout_ms,
        run_timeout_ms=run_timeout_ms,
        retries=retries,
        report_dir=report_dir,
        junit=junit,
        api_key=env.get("MONITOR_API_KEY") or DEFAULT_API_KEY,
        quiet=bool(getattr(args, "quiet", False)),
        json_output=bool(getattr(args, "json_output", False)),
    )


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, secret: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secret = secret

    def error(self, message: str) -> None:
        # argparse echoes unknown arguments; scrub in case the key was typed.
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {scrub(message, self.secret)}\n")


def build_parser(secret: str = "") -> argparse.ArgumentParser:
    parser = _Parser(
        secret=secret,
        prog="service_monitor.py",
        allow_abbrev=False,
        description="Health checks for the export API with latency, JSON report and exit codes.",
        epilog=(
            "Each option can also be set with MONITOR_<NAME> (e.g. MONITOR_BASE_URL); flags win. "
            "The API key is read only from MONITOR_API_KEY. "
            "Exit codes: 0 all checks passed, 1 a check failed, 2 usage error, "
            "3 report/JUnit not written."
        ),
    )
    parser.add_argument(
        "--base-url", metavar="URL", help=f"service base URL (default {DEFAULT_BASE_URL})"
    )
    parser.add_argument(
        "--threshold-ms",
        metavar="MS",
        help=f"max total latency per check (default {DEFAULT_THRESHOLD_MS})",
    )
    parser.add_argument(
        "--timeout-ms",
        metavar="MS",
        help=f"hard deadline per attempt (default {DEFAULT_TIMEOUT_MS})",
    )
    parser.add_argument(
        "--run-timeout-ms",
        metavar="MS",
        help="deadline for the whole run (default timeout x (retries+1) + retry pauses + 1000)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        help="retries after network errors and timeouts (default 0, max 10)",
    )
    parser.add_argument(
        "--report-dir",
        metavar="DIR",
        help="where report-*.json go (default: monitoring/ in the repo root)",
    )
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--quiet", action="store_true", help="print nothing when every check passes"
    )
    output.add_argument(
        "--json",
        dest="json_output",
        action="store_true",
        help="print the report JSON instead of the summary",
    )
    return parser


# --------------------------------------------------------------------------
# I/O: HTTP attempts, concurrency, files
# --------------------------------------------------------------------------


def _tls_verify() -> bool | str:
    # Sessions ignore the environment (proxies, .netrc); keep the CA bundle
    # variables requests would normally honour.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def request_headers(spec: CheckSpec, api_key: str) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Connection": "close", "Accept": "*/*"}
    if spec.needs_key:
        headers["X-API-Key"] = api_key
    return headers


def _response_socket(response: requests.Response) -> socket.socket | None:
    raw = getattr(response, "raw", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class _AttemptContext:
    """Shared between an attempt's worker thread and its watchdog."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.aborted = False
        self.response: requests.Response | None = None
        self.t_headers: float | None = None
        self.t_end: float | None = None
        self.status: int | None = None
        self.reason_phrase = ""
        self.chunks: list[bytes] = []
        self.nbytes = 0
        self.error: BaseException | None = None

    def set_response(self, response: requests.Response) -> None:
        with self.lock:
            self.response = response
            aborted = self.aborted
        if aborted:
            _shutdown(response)

    def abort(self) -> None:
        with self.lock:
            self.aborted = True
            response = self.response
        if response is not None:
            _shutdown(response)


def _shutdown(response: requests.Response) -> None:
    # shutdown() (unlike close()) wakes a recv() blocked in another thread.
    sock = _response_socket(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _attempt_worker(
    ctx: _AttemptContext, url: str, headers: dict[str, str], deadline: float
) -> None:
    session = requests.Session()
    session.trust_env = False
    response = None
    try:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise DeadlineExceeded()
        # requests' timeout bounds each socket operation; the deadline checks
        # below and the watchdog in perform_attempt bound the whole attempt.
        response = session.get(
            url,
            headers=headers,
            timeout=(remaining, remaining),
            stream=True,
            allow_redirects=False,  # a redirect must not carry the key elsewhere
            verify=_tls_verify(),
        )
        ctx.t_headers = time.perf_counter()
        ctx.status = response.status_code
        ctx.reason_phrase = response.reason or ""
        ctx.set_response(response)
        for chunk in response.iter_content(chunk_size=CHUNK_SIZE):
            ctx.chunks.append(chunk)
            ctx.nbytes += len(chunk)
            if ctx.nbytes > MAX_BODY_BYTES:
                raise BodyTooLarge()
            if time.perf_counter() >= deadline:
                raise DeadlineExceeded()
        ctx.t_end = time.perf_counter()
    except Exception as exc:  # recorded and classified by the caller
        ctx.error = exc
    finally:
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        with contextlib.suppress(Exception):
            session.close()
        ctx.done.set()


def perform_attempt(url: str, headers: dict[str, str], deadline: float) -> Observation:
    """One GET on a fresh session, finished or abandoned by `deadline`
    (a time.perf_counter() value)."""
    ctx = _AttemptContext()
    t0 = time.perf_counter()
    worker = threading.Thread(
        target=_attempt_worker,
        args=(ctx, url, headers, deadline),
        daemon=True,
        name="monitor-attempt",
    )
    worker.start()
    # The watchdog: if the worker is still busy at the deadline (a body that
    # drips forever, a server that never answers), shut its socket down and
    # stop waiting. A worker stuck before it has a response object (headers
    # that trickle in) is simply abandoned: a daemon thread cannot keep the
    # process alive.
    finished = ctx.done.wait(max(0.0, deadline - t0))
    t_cut = time.perf_counter()
    if not finished:
        ctx.abort()
        ctx.done.wait(ABORT_GRACE_S)
    obs = Observation(
        elapsed_ms=(t_cut - t0) * 1000,
        http_status=ctx.status,
        reason_phrase=ctx.reason_phrase,
        ttfb_ms=None if ctx.t_headers is None else (ctx.t_headers - t0) * 1000,
        nbytes=ctx.nbytes,
    )
    if finished and ctx.error is None and ctx.t_end is not None:
        obs.elapsed_ms = obs.total_ms = (ctx.t_end - t0) * 1000
        obs.body = b"".join(ctx.chunks)
    elif finished and ctx.error is not None and not isinstance(ctx.error, DeadlineExceeded):
        obs.error = ctx.error
    else:
        obs.deadline_hit = True
    return obs


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_check(
    spec: CheckSpec,
    config: Config,
    run_start: float,
    run_deadline: float,
    *,
    perform: Callable[[str, dict[str, str], float], Observation] = perform_attempt,
    sleep: Callable[[float], None] = time.sleep,
    on_start: Callable[[int, str, float], None] | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> CheckResult:
    url = check_url(config.base_url, spec.path)
    headers = request_headers(spec, config.api_key)
    result = CheckResult(spec.name, spec.method, display_url(url))
    for number in range(1, config.retries + 2):
        if number > 1:
            sleep(min(RETRY_DELAY_S, max(0.0, run_deadline - time.perf_counter())))
            if time.perf_counter() >= run_deadline:
                break
        started_at = format_rfc3339(_utc_now())
        t0 = time.perf_counter()
        if on_start:
            on_start(number, started_at, t0)
        own_deadline = t0 + config.timeout_ms / 1000
        bounded_by_run = run_deadline < own_deadline
        obs = perform(url, headers, run_deadline if bounded_by_run else own_deadline)
        if bounded_by_run:
            deadline = Deadline(
                ReasonCode.RUN_DEADLINE,
                config.run_timeout_ms,
                (time.perf_counter() - run_start) * 1000,
            )
        else:
            deadline = Deadline(ReasonCode.TIMEOUT, config.timeout_ms, obs.elapsed_ms)
        reasons = evaluate(spec, obs, config.threshold_ms, deadline, config.api_key)
        error = None
        if obs.error is not None:
            error = describe_exception(obs.error, config.api_key)
        attempt = Attempt(
            number=number,
            started_at=started_at,
            elapsed_ms=obs.elapsed_ms,
            http_status=obs.http_status,
            total_ms=obs.total_ms,
            ttfb_ms=obs.ttfb_ms,
            nbytes=obs.nbytes,
            reasons=reasons,
            error=error,
        )
        result.attempts.append(attempt)
        if on_attempt:
            on_attempt(attempt)
        if attempt.passed or not is_retryable(reasons):
            break
    return result


class _CheckSlot:
    """One check's thread and what it has recorded so far."""

    def __init__(self, spec: CheckSpec, config: Config) -> None:
        self.spec = spec
        self.url = display_url(check_url(config.base_url, spec.path))
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.attempts: list[Attempt] = []
        self.current: tuple[int, str, float] | None = None  # attempt in flight
        self.result: CheckResult | None = None

    def started(self, number: int, started_at: str, t0: float) -> None:
        with self.lock:
            self.current = (number, started_at, t0)

    def record(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def run(
        self,
        config: Config,
        run_start: float,
        run_deadline: float,
        perform: Callable[..., Observation],
    ) -> None:
        try:
            result = run_check(
                self.spec,
                config,
                run_start,
                run_deadline,
                perform=perform,
                on_start=self.started,
                on_attempt=self.record,
            )
            with self.lock:
                self.result = result
        finally:
            self.done.set()

    def finalize(self, config: Config, run_start: float) -> CheckResult:
        """The check's result, or a run_deadline failure if it never finished."""
        with self.lock:
            if self.result is not None:
                return self.result
            attempts = list(self.attempts)
            current = self.current
        now = time.perf_counter()
        if current is not None and current[0] > len(attempts):
            number, started_at, t0 = current
        else:  # stuck between attempts (or before the first one)
            number, started_at, t0 = len(attempts) + 1, format_rfc3339(_utc_now()), now
        reason = deadline_reason(
            Deadline(ReasonCode.RUN_DEADLINE, config.run_timeout_ms, (now - run_start) * 1000)
        )
        attempts.append(
            Attempt(
                number=number,
                started_at=started_at,
                elapsed_ms=(now - t0) * 1000,
                http_status=None,
                total_ms=None,
                ttfb_ms=None,
                nbytes=0,
                reasons=[reason],
                error="check did not finish before the run deadline",
            )
        )
        return CheckResult(self.spec.name, self.spec.method, self.url, attempts)


def run_checks(
    config: Config,
    specs: Sequence[CheckSpec] = CHECKS,
    *,
    perform: Callable[..., Observation] = perform_attempt,
) -> tuple[list[CheckResult], datetime, float]:
    """Run all checks concurrently under the run deadline.

    Returns the results, the wall-clock start and the duration in ms. Check
    threads are daemons: one that is stuck cannot keep the process alive.
    """
    started_at = _utc_now()
    run_start = time.perf_counter()
    run_deadline = run_start + config.run_timeout_ms / 1000
    slots = [_CheckSlot(spec, config) for spec in specs]
    for slot in slots:
        threading.Thread(
            target=slot.run,
            args=(config, run_start, run_deadline, perform),
            daemon=True,
            name=f"monitor-{slot.spec.name}",
        ).start()
    hard_stop = run_deadline + FINALIZE_GRACE_S
    for slot in slots:
        slot.done.wait(max(0.0, hard_stop - time.perf_counter()))
    results = [slot.finalize(config, run_start) for slot in slots]
    return results, started_at, (time.perf_counter() - run_start) * 1000


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


def _safe_text(text: str, secret: str) -> str:
    # Last line of defence for whole outputs. Only for keys long enough that a
    # match cannot be an ordinary word; shorter keys rely on the targeted
    # scrubbing of server- and exception-derived text.
    return scrub(text, secret) if len(secret) >= 8 else text


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ
    argv = list(sys.argv[1:] if argv is None else argv)
    secret = env.get("MONITOR_API_KEY") or DEFAULT_API_KEY
    parser = build_parser(secret)
    if any(a.split("=", 1)[0] in ("--api-key", "--key") for a in argv):
        parser.print_usage(sys.stderr)
        print(
            f"{parser.prog}: error: the API key is read only from MONITOR_API_KEY, never a flag",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        config = resolve_config(args, env)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {scrub(str(exc), secret)}", file=sys.stderr)
        return ExitCode.USAGE

    run_id = str(uuid.uuid4())
    results, started_at, duration_ms = run_checks(config)
    report = build_report(
        config,
        results,
        run_id=run_id,
        started_at=started_at,
        finished_at=_utc_now(),
        duration_ms=duration_ms,
        previous_reports=load_previous_reports(config.report_dir),
    )
    code = exit_code_for(report)
    report_path: Path | None = None
    try:
        report_path = unique_report_path(config.report_dir, started_at)
        atomic_write_text(report_path, _safe_text(json.dumps(report, indent=2) + "\n", secret))
    except OSError as exc:
        report_path = None
        print(
            f"error: could not write report to {config.report_dir}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        code = ExitCode.OUTPUT_ERROR
    if config.junit is not None:
        try:
            xml = ET.tostring(build_junit(report), encoding="unicode")
            atomic_write_text(
                config.junit,
                _safe_text('<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n", secret),
            )
        except OSError as exc:
            print(
                f"error: could not write JUnit file {config.junit}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            code = ExitCode.OUTPUT_ERROR

    if config.json_output:
        print(_safe_text(json.dumps(report, indent=2), secret))
    elif not (config.quiet and code == ExitCode.OK):
        print(_safe_text(format_console(report, report_path), secret))
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
