"""The fixed list of reasons a check fails for, and how exceptions map onto them.

The list is closed: reports, JUnit and the Prometheus `reason` label only ever carry these codes.
"""

import enum
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions

from .http_attempt import MAX_BODY_BYTES, BodyTooLarge, DeadlineExceeded
from .redact import scrub
from .units import fmt_num, round_ms


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


def is_retryable(reasons: Sequence[Reason]) -> bool:
    return any(r.code in RETRYABLE for r in reasons)


@dataclass(frozen=True)
class Deadline:
    """Which deadline bounded an attempt, for the reason it produces."""

    kind: ReasonCode  # TIMEOUT or RUN_DEADLINE
    limit_ms: float
    measured_ms: float


def deadline_reason(deadline: Deadline) -> Reason:
    if deadline.kind is ReasonCode.RUN_DEADLINE:
        message = (
            f"run deadline of {fmt_num(deadline.limit_ms)} ms reached before the check finished"
        )
    else:
        message = f"no complete response within {fmt_num(deadline.limit_ms)} ms"
    return Reason(
        deadline.kind,
        message,
        measured_ms=round_ms(deadline.measured_ms),
        limit_ms=deadline.limit_ms,
    )


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


_LOW_LEVEL_MODULES = frozenset({"builtins", "socket", "ssl", "http"})


def describe_exception(exc: BaseException, secret: str) -> str:
    """Short "Type: message" of the most specific low-level cause (e.g.
    ConnectionRefusedError rather than requests' wrapper), key-scrubbed: a
    message can quote server bytes, such as a malformed status line."""
    chain = list(_exception_chain(exc))
    low_level = [e for e in chain if type(e).__module__.split(".")[0] in _LOW_LEVEL_MODULES]
    cause = low_level[0] if low_level else chain[-1]
    text = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    return scrub(text, secret)[:300]
