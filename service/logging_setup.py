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


def json_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: dict,
    exception: str | None = None,
) -> str:
    """One log line, without its line break: the only place a line is formed."""
    entry = {"ts": log_timestamp(created), "level": level, "logger": logger, "message": message}
    entry.update(fields)
    if exception is not None:
        entry["exception"] = exception
    # Defence in depth: nothing here formats client text, but a traceback may quote some.
    return redact_keys(_ENCODER.encode(entry))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json_line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            {k: v for k, v in vars(record).items() if k not in _STANDARD},
            self.formatException(record.exc_info) if record.exc_info else None,
        )


def _writes_json_alone(handler: logging.Handler) -> bool:
    return (
        getattr(handler, "_wme", False)
        and type(handler.formatter) is JsonFormatter
        and not handler.filters
    )


class FieldsLog:
    """INFO lines of one logger, written the way `logging` writes them through the service's JSON
    handler, but without building a LogRecord: the request log line, once per request, where
    the record and its dispatch cost more than forming the line itself (docs/performance.md,
    "Sixth step"). The bytes are those of `logger.info(message, extra=fields)`.

    Whenever something else would see the line (another handler, such as pytest's capture; a
    filter; no handler at all), it goes through `logging` as any line does. The level and a
    disabled logger are honoured either way."""

    def __init__(self, name: str):
        self.logger = logging.getLogger(name)

    def info(self, message: str, fields: dict) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handlers = self._json_handlers()
        if not handlers:
            logger.info(message, extra=fields)
            return
        line = json_line(time.time(), "INFO", logger.name, message, fields)
        for handler in handlers:
            # What StreamHandler.emit and flush do, under the handler's lock as Handler.handle.
            handler.acquire()
            try:
                handler.stream.write(line + handler.terminator)
                handler.stream.flush()
            except Exception:
                handler.handleError(
                    logger.makeRecord(logger.name, logging.INFO, "", 0, message, (), None)
                )
            finally:
                handler.release()

    def _json_handlers(self) -> list[logging.Handler] | None:
        """The handlers an INFO record of this logger reaches, when every one is the service's
        JSON handler; None otherwise (Logger.callHandlers' walk, with the same level checks)."""
        if self.logger.filters:
            return None
        found = []
        current: logging.Logger | None = self.logger
        while current is not None:
            for handler in current.handlers:
                if handler.level > logging.INFO:
                    continue
                if not _writes_json_alone(handler):
                    return None
                found.append(handler)
            current = current.parent if current.propagate else None
        return found or None


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
