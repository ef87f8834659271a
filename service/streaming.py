"""A streamed response (the NDJSON export) that fails half-way through.

Its 200 and headers are already on the wire, so the failure cannot become an error body. Instead:
the generator raises `StreamAborted`, gunicorn closes the connection without the terminating
chunk (the client sees a broken transfer at once, never a 200 that looks complete or hangs), and
the request's audit row, written when the stream ends (`audit.py`), records the failure's status
and error code instead of the 200.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from service.db import DatabaseBusy, DatabaseUnavailable
from service.errors import ErrorCode

log = logging.getLogger("service.streaming")


class StreamAborted(Exception):
    """Raised out of a response body so that the server drops the connection."""


@dataclass
class StreamOutcome:
    status: int | None = None  # None: the stream ended normally
    error_code: str | None = None

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, DatabaseUnavailable):
            self.status, self.error_code = 503, str(ErrorCode.DB_UNAVAILABLE)
        elif isinstance(exc, DatabaseBusy):
            self.status, self.error_code = 503, str(ErrorCode.SERVICE_BUSY)
        else:
            self.status, self.error_code = 500, str(ErrorCode.INTERNAL_ERROR)


def abort_on_failure(
    chunks: Iterator[bytes],
    outcome: StreamOutcome,
    refund: Callable[[], object] | None = None,
) -> Iterator[bytes]:
    """`chunks`, or on a failure of ours: record it, give the quota unit back (`refund`; not when
    the database is gone, which would only delay the abort by a connect timeout), and raise."""
    try:
        yield from chunks
    except Exception as exc:  # GeneratorExit (the client left) is not ours and passes through
        outcome.fail(exc)
        if refund is not None and not isinstance(exc, DatabaseUnavailable):
            refund()
        log.warning(
            "stream aborted: %s",
            type(exc).__name__,
            extra={"event": "stream_aborted", "error_code": outcome.error_code},
            exc_info=not isinstance(exc, DatabaseUnavailable | DatabaseBusy),
        )
        raise StreamAborted(outcome.error_code) from None
