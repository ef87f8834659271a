"""What the monitor checks, and how one attempt is judged."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .http_attempt import Observation
from .reasons import Deadline, Reason, ReasonCode, classify_exception, deadline_reason
from .redact import EXCERPT_CHARS, excerpt, scrub
from .units import fmt_num, round_ms


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
                f"took {obs.total_ms:.1f} ms, threshold is {fmt_num(threshold_ms)} ms",
                measured_ms=round_ms(obs.total_ms),
                limit_ms=threshold_ms,
            )
        )
    return reasons


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
            "latency_ms": {"total": round_ms(self.total_ms), "ttfb": round_ms(self.ttfb_ms)},
            "elapsed_ms": round_ms(self.elapsed_ms),
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
            "latency_ms": {"total": round_ms(final.total_ms), "ttfb": round_ms(final.ttfb_ms)},
            "bytes": final.nbytes,
            "status": "pass" if self.passed else "fail",
            "flaky": self.flaky,
            "reasons": [r.to_dict() for r in final.reasons],
            "attempts": [a.to_dict() for a in self.attempts],
        }
