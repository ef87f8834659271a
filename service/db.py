"""One MySQL connection per worker (per thread, in tests), opened lazily and replaced when lost.

gunicorn's sync workers serve one request at a time, so a connection per worker process needs no
pool. The connection is opened on first use after fork (never at import), and any connection-level
error throws it away: the next request opens a fresh one, so the service recovers by itself when the
database comes back.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pymysql
import pymysql.cursors

from service.config import Settings

T = TypeVar("T")

# PyMySQL raises OperationalError both for "the database could not be asked" and for errors a
# retry cannot mend (a missing privilege, 1142/1143/1044). Only these numbers mean unavailable
# (answer 503 and reconnect); the rest are bugs or misconfiguration (500, connection kept).
UNAVAILABLE_CODES = frozenset({
    1040,  # too many connections
    1045,  # access denied at connect (credentials rotated under us)
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock
    1927,  # connection killed (MariaDB)
    2002, 2003, 2005, 2006, 2012, 2013, 2026, 2055,  # client: cannot connect, gone, lost
    4031,  # disconnected by the server (MySQL 8)
})
CONNECTION_ERRORS = (pymysql.err.OperationalError, pymysql.err.InterfaceError)


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code is None or code in UNAVAILABLE_CODES

# A connection idle longer than this is pinged before use: MySQL may have closed it
# (wait_timeout), and a ping is cheaper than a failed request.
IDLE_PING_SECONDS = 30.0


class DatabaseUnavailable(Exception):
    """The database could not be reached or dropped the connection; answer 503."""


def describe(exc: BaseException) -> str:
    """Error class and MySQL error number only: server messages can quote statement text."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


def connect(settings: Settings, *, database: str | None = None) -> pymysql.Connection:
    """Open a connection with the project's explicit options."""
    conn = pymysql.connect(
        host=settings.DB_HOST,
        port=settings.DB_PORT,
        user=settings.DB_USER,
        password=settings.DB_PASS,
        database=settings.DB_NAME if database is None else database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=settings.DB_CONNECT_TIMEOUT,
        read_timeout=settings.DB_READ_TIMEOUT,
        write_timeout=settings.DB_WRITE_TIMEOUT,
        cursorclass=pymysql.cursors.DictCursor,
    )
    if settings.DB_TIME_ZONE:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = %s", (settings.DB_TIME_ZONE,))
    return conn


class Database:
    """Hands out this worker's connection; see the module docstring."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._local = threading.local()

    def _current(self) -> pymysql.Connection | None:
        conn = getattr(self._local, "conn", None)
        # A connection inherited across fork belongs to the parent: never share its socket.
        if conn is not None and getattr(self._local, "pid", None) != os.getpid():
            self._local.conn = None
            return None
        return conn

    def connection(self) -> pymysql.Connection:
        conn = self._current()
        now = time.monotonic()
        if conn is not None and now - self._local.last_used > IDLE_PING_SECONDS:
            try:
                conn.ping(reconnect=False)
            except CONNECTION_ERRORS:
                self.discard()
                conn = None
        if conn is None:
            try:
                conn = connect(self.settings)
            except CONNECTION_ERRORS as exc:
                raise DatabaseUnavailable(describe(exc)) from exc
            self._local.conn = conn
            self._local.pid = os.getpid()
        self._local.last_used = now
        return conn

    def discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            # The socket may already be gone; closing is best effort.
            with contextlib.suppress(Exception):
                conn.close()

    @contextmanager
    def cursor(self) -> Iterator[pymysql.cursors.DictCursor]:
        """A cursor on this worker's connection; connection errors become DatabaseUnavailable."""
        conn = self.connection()
        try:
            with conn.cursor() as cur:
                yield cur
        except CONNECTION_ERRORS as exc:
            if not is_unavailable(exc):
                raise
            self.discard()
            raise DatabaseUnavailable(describe(exc)) from exc

    def read(self, query: Callable[[pymysql.cursors.DictCursor], T]) -> T:
        """Run a read-only `query(cursor)`. A kept connection found dead (the database restarted,
        a proxy dropped it) is replaced and the read tried once more: safe, as it changes
        nothing, and it spares the client a 503 per worker after every database restart."""
        reused = self._current() is not None
        try:
            with self.cursor() as cur:
                return query(cur)
        except DatabaseUnavailable:
            if not reused:
                raise
        with self.cursor() as cur:
            return query(cur)

    @contextmanager
    def transaction(self) -> Iterator[pymysql.cursors.DictCursor]:
        """All or nothing: commit on success, roll back on any error."""
        conn = self.connection()
        try:
            conn.begin()
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except CONNECTION_ERRORS as exc:
            if not is_unavailable(exc):
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.rollback()
                raise
            self.discard()
            raise DatabaseUnavailable(describe(exc)) from exc
        except BaseException:
            try:
                conn.rollback()
            except CONNECTION_ERRORS:
                self.discard()
            raise
