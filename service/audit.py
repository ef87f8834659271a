"""The audit trail of TICKET-002: one row per /api/* request, whatever its outcome.

Rows are recorded at app level (blueprint hooks do not see 404/405) after the response is built,
with the true status. They are buffered per worker and written in batches by a background thread:

* the buffer is bounded (`AUDIT_BUFFER_SIZE`); when it is full the row is written synchronously in
  the request instead of being dropped, and the overflow is counted and logged;
* it is flushed at least every `AUDIT_FLUSH_INTERVAL` seconds (at most 1), and on worker exit
  (gunicorn's `worker_exit` hook and `atexit`), so a graceful stop loses nothing;
* while the database is down, rows wait in memory (up to the bound) and are written on recovery;
  only beyond the bound is a row lost, and every loss is counted and logged.

What a row holds: the key's id and 6-character prefix (only for a presented value that matched a
key), method, route, status, latency, UTC time, request id and an error code from `ErrorCode`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
import time
import weakref
from collections import deque

import pymysql
from flask import Flask, Request, Response, g, request

from service import db as dbmod
from service import metrics
from service.clock import rfc3339, utc_now
from service.config import Settings
from service.logging_setup import FieldsLog
from service.repositories import audit_logs

log = logging.getLogger("service.audit")
request_log = FieldsLog("service.request")

_WRITE_CHUNK = 1000
# Repeated warnings of the writer (a full buffer) are logged at most this often.
LOG_EVERY_SECONDS = 60.0
# Client-sent request ids are kept only in forms that cannot carry one of our keys.
_REQUEST_ID = re.compile(
    r"^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
# A path that matched no route is client text: it is recorded only if it looks like a route
# (lowercase words), which no key can, so a key pasted into a URL never reaches a log or a row.
_ROUTE_LIKE = re.compile(r"^(?:/[a-z][a-z-]{0,31}){1,4}/?$")
UNMATCHED_PATH = "(unmatched)"


def new_id() -> str:
    """32 random lowercase hex digits (128 bits from the OS): request ids and audit row ids.
    Cheaper than uuid.uuid4().hex, which builds a UUID object to print it."""
    return os.urandom(16).hex()


_writers: weakref.WeakSet[AuditWriter] = weakref.WeakSet()


class AuditWriter:
    """A bounded, periodically flushed buffer of audit rows with its own connection."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # Appended by requests, taken by the writer thread: a deque's append and popleft are
        # atomic, so the hot path takes no lock (a queue.Queue takes two per row).
        self._queue: deque[dict] = deque()
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._conn = None
        self.overflowed = 0
        self.lost = 0
        self.last_error: BaseException | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.outages = dbmod.OutageLog("audit writer")
        self._logged_at: dict[str, float] = {}
        self._occurrences: dict[str, int] = {}
        _writers.add(self)

    def record(self, row: dict) -> None:
        self._ensure_thread()
        metrics.audit_rows("buffered")
        # Rows waiting for a retry count against the bound too.
        if self.waiting < self.settings.AUDIT_BUFFER_SIZE:
            self._queue.append(row)
            return
        self.overflowed += 1
        self._log_limited(
            "audit_overflow",
            logging.WARNING,
            "audit buffer full; writing in the request",
            overflow_count=self.overflowed,
        )
        with self._lock:
            self._pending.append(row)
        self.flush()

    def flush(self) -> bool:
        """Write everything buffered so far. True if nothing is left waiting."""
        with self._lock:
            while True:
                try:
                    self._pending.append(self._queue.popleft())
                except IndexError:
                    break
            if not self._pending:
                return True
            while self._pending:
                chunk = self._pending[:_WRITE_CHUNK]
                try:
                    self._write(chunk)
                except pymysql.err.MySQLError as exc:
                    # Kept for a retry, whatever the error: a refusal may be mended by an
                    # operator (a password, a migration) while the rows wait.
                    lost_db = isinstance(exc, dbmod.CONNECTION_ERRORS) and dbmod.is_unavailable(exc)
                    metrics.database_error("unavailable" if lost_db else "other")
                    self._drop_connection()
                    self._trim()
                    metrics.audit_rows("retried", len(self._pending))
                    self.last_error = exc
                    self._retry_at = time.monotonic() + self._backoff()
                    self.outages.failed(self._cause(exc), waiting_rows=len(self._pending))
                    return False
                del self._pending[: len(chunk)]
                metrics.audit_rows("written", len(chunk))
            self.last_error = None
            self._failures = 0
            self.outages.recovered()
            return True

    def close(self, timeout: float = 3.0) -> None:
        """Stop the thread and write what is left. A database that refuses (wrong password,
        missing table) is not waited for: those rows are lost at once and counted in one line;
        a connection lost in passing is retried until `timeout`."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        deadline = time.monotonic() + timeout
        while not self.flush():
            if self._refused() or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        with self._lock:
            if self._pending:
                lost = len(self._pending)
                self.lost += lost
                metrics.audit_rows("lost", lost)
                cause = self._cause(self.last_error) if self.last_error else "the database failed"
                log.error(
                    "%d audit row(s) lost at exit: %s",
                    lost,
                    cause,
                    extra={"event": "audit_lost", "lost": lost, "cause": cause},
                )
                self._pending.clear()
        self._drop_connection()

    def _refused(self) -> bool:
        exc = self.last_error
        if exc is None:
            return False
        code = dbmod.error_code(exc)
        if code in dbmod.REFUSALS:
            return True
        return code == 2003  # nothing listens, or it timed out already

    def _cause(self, exc: BaseException) -> str:
        if dbmod.error_code(exc) == 1146:
            return f"audit_logs does not exist; run {dbmod.MIGRATE_COMMAND}"
        return dbmod.explain(exc, self.settings)

    def _backoff(self) -> float:
        # While the database fails, retry less often (up to every 5 s): each attempt is a
        # connection the server has to refuse.
        self._failures += 1
        return min(5.0, self.settings.AUDIT_FLUSH_INTERVAL * 2 ** min(self._failures, 10))

    @property
    def waiting(self) -> int:
        return len(self._queue) + len(self._pending)

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid == pid and self._thread is not None:
            return
        with self._lock:
            if self._pid == pid and self._thread is not None:
                return
            # After fork: the parent's thread and connection do not exist here.
            self._pid = pid
            self._conn = None
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.AUDIT_FLUSH_INTERVAL):
            if time.monotonic() < self._retry_at:
                continue
            try:
                self.flush()
            except Exception:
                log.exception("audit writer error", extra={"event": "audit_writer_error"})

    def _write(self, rows: list[dict]) -> None:
        # Each row gets its id at its first attempt and keeps it (the same dict is retried): a
        # batch sent again after a lost answer skips what was committed (0005_audit_write_once).
        for row in rows:
            if "audit_uid" not in row:
                row["audit_uid"] = new_id()
        if self._conn is None:
            self._conn = dbmod.connect(self.settings)
        with self._conn.cursor() as cur:
            audit_logs.insert_many(cur, rows)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # best effort: it is already broken
                conn.close()

    def _trim(self) -> None:
        # While the database is down the buffer must stay bounded: drop the oldest beyond it.
        excess = len(self._pending) - self.settings.AUDIT_BUFFER_SIZE
        if excess > 0:
            del self._pending[:excess]
            self.lost += excess
            metrics.audit_rows("lost", excess)
            self._log_limited(
                "audit_lost",
                logging.ERROR,
                "audit rows lost: buffer full while the database is unavailable",
                lost=excess,
                lost_total=self.lost,
            )

    def _log_limited(self, event: str, level: int, message: str, **fields: object) -> None:
        """At most one line per event and minute while it keeps happening (with the number of
        occurrences), so a full buffer during an outage does not log once per request."""
        now = time.monotonic()
        self._occurrences[event] = self._occurrences.get(event, 0) + 1
        if now - self._logged_at.get(event, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
            return
        self._logged_at[event] = now
        occurrences = self._occurrences.pop(event)
        log.log(level, message, extra={"event": event, "occurrences": occurrences, **fields})


def close_all_writers() -> None:
    """Flush every writer of this process (gunicorn worker_exit, atexit)."""
    for writer in list(_writers):
        writer.close()


atexit.register(close_all_writers)


def route_for_record(req: Request) -> str:
    """The path to log and audit: the matched route, or a route-like path, never client text."""
    if req.url_rule is not None:
        return req.url_rule.rule
    path = req.path
    return path if _ROUTE_LIKE.match(path) else UNMATCHED_PATH


def _settled(row: dict, outcome, started: float) -> dict:
    """A streamed request's row once its body has ended: the whole stream's latency, and the
    failure that cut it, if any."""
    row["response_time_ms"] = int(round((time.perf_counter() - started) * 1000))
    if outcome.status is not None:
        row["response_code"], row["error_code"] = outcome.status, outcome.error_code
    return row


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    writer = AuditWriter(settings)
    app.extensions["audit"] = writer

    @app.before_request
    def start_request_clock() -> None:
        ctx = g._get_current_object()  # one context lookup, not one per attribute
        ctx.started = time.perf_counter()
        ctx.received_at = utc_now()
        # Read from the WSGI environ, as request.headers reads it (one proxy lookup, no mapping).
        sent = request._get_current_object().environ.get("HTTP_X_REQUEST_ID", "")
        ctx.request_id = sent if _REQUEST_ID.match(sent) else new_id()
        ctx.api_key = None

    @app.after_request
    def record_request(response: Response) -> Response:
        # The request and g, looked up once: each use of the proxies is a context lookup.
        req, ctx = request._get_current_object(), g._get_current_object()
        started = ctx.get("started", time.perf_counter())
        latency_ms = int(round((time.perf_counter() - started) * 1000))
        request_id = ctx.get("request_id") or new_id()
        key = ctx.get("api_key")
        path = route_for_record(req)
        error_code = getattr(response, "error_code", None)
        response.headers.add("X-Request-ID", request_id)  # set by nothing else
        if req.path == "/api" or req.path.startswith("/api/"):
            row = {
                "key_id": key["id"] if key else None,
                "key_prefix": key["key_prefix"] if key else None,
                "method": req.method[:10],
                "endpoint": path[:255],
                "response_code": response.status_code,
                "response_time_ms": latency_ms,
                "timestamp": ctx.get("received_at", utc_now()).replace(tzinfo=None),
                "request_id": request_id,
                "error_code": error_code,
            }
            outcome = getattr(response, "stream_outcome", None)
            if outcome is None:
                writer.record(row)
            else:
                # A streamed body may still fail: the row is written when it ends, with the
                # failure's status and code if it failed (service/streaming.py).
                response.call_on_close(lambda: writer.record(_settled(row, outcome, started)))
        fields = {
            "event": "request",
            "request_id": request_id,
            "method": req.method,
            "path": path,
            "status": response.status_code,
            "latency_ms": latency_ms,
            "key_prefix": key["key_prefix"] if key else None,
            "error_code": error_code,
            "remote_addr": req.remote_addr,
        }
        quota_state = ctx.get("quota")
        if quota_state is not None:  # support can see where a key stood, and when it resets
            fields.update(
                quota_used=quota_state.used,
                quota_limit=quota_state.limit,
                quota_reset_at=rfc3339(quota_state.reset_at),
            )
        request_log.info("request", fields)
        return response
