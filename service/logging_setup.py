"""Structured logs: one JSON object per line on stderr, with stable field names.

Keys appear only as their 6-character prefix (`key_prefix`); nothing here ever formats a header,
a query string or a request body into a log line.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time

from service.masking import redact_keys

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Built once: json.dumps() with an option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(default=str)


class KeyMaskingFormatter(logging.Formatter):
    """A plain formatter whose whole output (message and traceback) has every key-shaped token
    cut to its prefix: for gunicorn's own lines, which may quote a malformed request."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_keys(super().format(record))


# (second since the epoch, its text): the last second a line was written in.
_second_text: list[tuple[int | None, str]] = [(None, "")]


def log_timestamp(created: float) -> str:
    """`record.created` as `2026-12-02T04:35:35.054Z`, exactly as clock.rfc3339(milliseconds=True)
    writes the same instant. The text of the whole second is kept between calls: a worker writes
    many lines a second, and only the milliseconds differ between them."""
    fraction, whole = math.modf(created)
    second, microseconds = int(whole), round(fraction * 1e6)  # rounded as datetime rounds it
    if microseconds >= 1_000_000:
        second, microseconds = second + 1, microseconds - 1_000_000
    kept = _second_text[0]  # one read: another thread may replace it meanwhile
    if kept[0] != second:
        kept = _second_text[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{kept[1]}.{microseconds // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": log_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Defence in depth: nothing here formats client text, but a traceback may quote some.
        return redact_keys(_ENCODER.encode(entry))


def configure_logging(level: str) -> None:
    # No line shows the calling function, thread or process name: not collecting them saves a
    # stack walk and two lookups per record (the logging manual's "Optimization"). The process
    # id stays: gunicorn's own lines show it.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    if any(getattr(h, "_wme", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._wme = True
    root.addHandler(handler)
    root.setLevel(level)
