"""Structured logs: one JSON object per line on stderr, with stable field names.

Keys appear only as their 6-character prefix (`key_prefix`); nothing here ever formats a header,
a query string or a request body into a log line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from service.clock import rfc3339

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": rfc3339(datetime.fromtimestamp(record.created, UTC), milliseconds=True),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_wme", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._wme = True
    root.addHandler(handler)
    root.setLevel(level)
