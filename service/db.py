"""One MySQL connection per worker (per thread, in tests), opened lazily and replaced when lost.

gunicorn's sync workers serve one request at a time, so a connection per worker process needs no
pool. The connection is opened on first use after fork (never at import), and any connection-level
error throws it away: the next request opens a fresh one, so the service recovers by itself when the
database comes back.

With several database hosts (`DB_HOSTS`, the nodes of a Galera cluster) a connection is opened to
the host that last worked in this process, else to the next one that answers; a connection lost
to a node that died or left the cluster moves the process on to the next host (`failed_over`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pymysql
import pymysql.cursors

from service import metrics, migrations
from service.config import Settings

T = TypeVar("T")
log = logging.getLogger("service.db")
MIGRATE_COMMAND = "flask --app service migrate"

# PyMySQL raises OperationalError both for "the database could not be asked" and for errors a
# retry cannot mend (a missing privilege, 1142/1143/1044). Only these numbers mean unavailable
# (answer 503 and reconnect); the rest are bugs or misconfiguration (500, connection kept).
UNAVAILABLE_CODES = frozenset(
    {
        1040,  # too many connections
        1045,  # access denied at connect (credentials rotated under us)
        1698,  # access denied (MariaDB's answer for some unknown or passwordless accounts)
        1047,  # Galera: this node is not in the primary component (WSREP not ready)
        1053,  # server shutdown in progress
        1927,  # connection killed (MariaDB)
        2002,
        2003,
        2005,
        2006,
        2012,
        2013,
        2026,
        2055,  # client: cannot connect, gone, lost
        4031,  # disconnected by the server (MySQL 8)
    }
)
CONNECTION_ERRORS = (pymysql.err.OperationalError, pymysql.err.InterfaceError)
# The database is up but two transactions collided: a deadlock (1213; on a Galera cluster also a
# certification conflict, when another node committed the same row first) or a lock wait that
# timed out (1205). The work was rolled back and may simply be run again (`Database.retrying`).
CONFLICT_CODES = frozenset({1205, 1213})
# Attempts of a conflicting unit of work, with a short pause before each retry: doubling from
# RETRY_PAUSE_FIRST up to RETRY_PAUSE_MAX, half of it random so that the colliding requests do not
# meet again in step. On one server the winner has committed by the time the loser hears of the
# conflict; on a Galera cluster the winner's writeset may still wait in this node's apply queue,
# and a retry at once reads the old row and loses certification again. Measured on three nodes
# with six writers hammering one row (no other work between writes): up to 93 losses in a row
# (3.3 s) retrying at once; with these pauses most conflicts end at the first retry, but a writer
# whose row the other nodes keep writing can still lose 10 to 29 times in a row (up to 1.1 s).
# Twenty attempts bound that: the pauses of all of them add up to at most about 0.7 s.
RETRY_ATTEMPTS = 20
RETRY_PAUSE_FIRST = 0.001
RETRY_PAUSE_MAX = 0.05


def conflict_pause(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th conflict before the next attempt."""
    ceiling = min(RETRY_PAUSE_MAX, RETRY_PAUSE_FIRST * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def is_conflict(exc: BaseException) -> bool:
    return (
        isinstance(exc, pymysql.err.OperationalError)
        and bool(exc.args)
        and exc.args[0] in CONFLICT_CODES
    )


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code is None or code in UNAVAILABLE_CODES


# A connection idle longer than this is pinged before use: MySQL may have closed it
# (wait_timeout), and a ping is cheaper than a failed request.
IDLE_PING_SECONDS = 30.0


class DatabaseUnavailable(Exception):
    """The database could not be reached or dropped the connection; answer 503. The message is
    the cause in words (`explain`)."""

    def __init__(self, *args):
        super().__init__(*args)
        metrics.database_error("unavailable")


class SchemaNotReady(Exception):
    """The database is missing, or its schema is older than the code: answer 503 until
    `flask --app service migrate` has run. The message says which, in words."""


# Errors that mean "this table or column does not exist": on a database whose migrations are
# pending that is expected, anywhere else a bug.
_MISSING_TABLE_OR_COLUMN = frozenset({1146, 1054})  # no such table, unknown column
# Refusals a retry within seconds cannot mend: at shutdown, rows waiting for one are lost at once.
REFUSALS = frozenset({1044, 1045, 1049, 1142, 1143, 1146, 1698})


def error_code(exc: BaseException) -> int | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


class DatabaseBusy(Exception):
    """A deadlock or lock wait timeout that outlasted the bounded retries: answer 503
    `service_busy` (the database is up; the client may retry shortly)."""

    def __init__(self, *args):
        super().__init__(*args)
        metrics.database_error("conflict")


def describe(exc: BaseException) -> str:
    """Error class and MySQL error number only: server messages can quote statement text."""
    code = error_code(exc)
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


# Errors that say the host itself is gone or out of the cluster (not a busy or misconfigured
# one): the next connection goes to the next host of DB_HOSTS.
HOST_LOST_CODES = frozenset({1047, 1053, 1927, 2002, 2003, 2006, 2013, 2026, 2055, 4031})

# Per process: which of a host list's addresses to try first (the last one that worked).
_preferred: dict[tuple[tuple[str, int], ...], int] = {}
_preferred_lock = threading.Lock()


def host_lost(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code in HOST_LOST_CODES


def failed_over(settings: Settings) -> None:
    """The current host was lost: start the next connection at the next host of the list."""
    addresses = settings.db_addresses
    if len(addresses) > 1:
        with _preferred_lock:
            _preferred[addresses] = (_preferred.get(addresses, 0) + 1) % len(addresses)


def current_address(settings: Settings) -> tuple[str, int]:
    addresses = settings.db_addresses
    return addresses[_preferred.get(addresses, 0) % len(addresses)]


def explain(exc: BaseException, settings: Settings) -> str:
    """The cause of a database error in words, from its number and our own settings (never the
    server's message text, which can quote a statement, nor the password)."""
    code = error_code(exc)
    target = ",".join(f"{host}:{port}" for host, port in settings.db_addresses)
    text = str(exc.args[1]) if len(exc.args) > 1 else ""
    if isinstance(exc, pymysql.err.InterfaceError):
        return f"the connection to {target} is closed"
    if code in (1045, 1698):
        return f"access denied for user {settings.DB_USER} at {target} (check DB_USER and DB_PASS)"
    if code == 1044:
        return f"access denied for user {settings.DB_USER} to database {settings.DB_NAME}"
    if code == 1049:
        return f"unknown database {settings.DB_NAME} at {target} (create it: {MIGRATE_COMMAND})"
    if code in (1142, 1143):
        return f"user {settings.DB_USER} lacks a privilege (see sql/roles.sql)"
    if code == 2003:
        if "timed out" in text:
            return f"timed out connecting to {target} after {settings.DB_CONNECT_TIMEOUT:g} s"
        if "Errno 111" in text or "refused" in text.lower():
            return f"connection refused at {target} (no server listens there)"
        if "Errno -2" in text or "Errno -3" in text or "not known" in text:
            return f"cannot resolve the host {settings.DB_HOST} (check DB_HOST)"
        return f"cannot connect to {target}"
    if code in (2006, 2013, 2055, 1927, 4031):
        return f"lost the connection to {target}"
    if code == 1040:
        return f"too many connections at {target}"
    if code == 1047:
        return f"the node at {target} is not in the cluster's primary component"
    if code == 1053:
        return f"the server at {target} is shutting down"
    if code == 1205:
        return "lock wait timeout"
    if code == 1213:
        return "deadlock"
    return f"MySQL error {describe(exc)}"


class OutageLog:
    """Logs a database outage once per change of state, then a reminder every `remind` seconds
    while it lasts, never once per attempt; and once when it ends. One per concern and process
    (requests, the audit writer)."""

    def __init__(self, what: str, *, remind: float = 60.0):
        self.what = what
        self.remind = remind
        self._lock = threading.Lock()
        self._cause: str | None = None
        self._since = 0.0
        self._logged_at = 0.0
        self._failures = 0

    @property
    def cause(self) -> str | None:
        return self._cause

    def failed(self, cause: str, **details: object) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            if cause == self._cause and now - self._logged_at < self.remind:
                return
            if cause != self._cause:
                self._since = now
                message = "database unavailable (%s): %s"
            else:
                message = "database still unavailable (%s): %s"
            fields = {
                "event": "db_unavailable",
                "cause": cause,
                "failures": self._failures,
                "for_seconds": int(now - self._since),
                **details,
            }
            self._cause, self._logged_at, self._failures = cause, now, 0
        log.warning(message, self.what, cause, extra=fields)

    def recovered(self) -> None:
        if self._cause is None:
            return
        now = time.monotonic()
        with self._lock:
            cause, self._cause = self._cause, None
            if cause is None:
                return
            since, self._failures = self._since, 0
        log.info(
            "database available again (%s); it was: %s",
            self.what,
            cause,
            extra={"event": "db_recovered", "after_seconds": int(now - since)},
        )


def schema_behind(conn: pymysql.Connection) -> str | None:
    """Why the schema cannot serve the code (migrations pending), or None when it is current."""
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            version = migrations.current_version(cur)
    except pymysql.err.MySQLError as exc:
        if error_code(exc) != 1146:
            raise
        version = 0
    latest = migrations.latest_version()
    if version >= latest:
        return None
    return f"migrations are pending (schema at version {version} of {latest})"


def connect(
    settings: Settings, *, database: str | None = None, read_timeout: float | None = None
) -> pymysql.Connection:
    """Open a connection with the project's explicit options: to the preferred host, else to
    the next one of DB_HOSTS that accepts it."""
    addresses = settings.db_addresses
    first = _preferred.get(addresses, 0)
    for attempt in range(len(addresses)):
        index = (first + attempt) % len(addresses)
        try:
            conn = _connect_to(settings, addresses[index], database, read_timeout)
        except CONNECTION_ERRORS as exc:
            if attempt == len(addresses) - 1 or not is_unavailable(exc):
                raise
            continue
        if index != first:
            with _preferred_lock:
                _preferred[addresses] = index
        return conn
    raise AssertionError("unreachable: at least one address")


def _connect_to(
    settings: Settings,
    address: tuple[str, int],
    database: str | None,
    read_timeout: float | None = None,
) -> pymysql.Connection:
    conn = pymysql.connect(
        host=address[0],
        port=address[1],
        user=settings.DB_USER,
        password=settings.DB_PASS,
        database=settings.DB_NAME if database is None else database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=settings.DB_CONNECT_TIMEOUT,
        # A migration's ALTER on a large table runs for minutes: it passes its own.
        read_timeout=read_timeout or settings.DB_READ_TIMEOUT,
        write_timeout=settings.DB_WRITE_TIMEOUT,
        cursorclass=pymysql.cursors.DictCursor,
    )
    try:
        with conn.cursor() as cur:
            # A streamed export reads its query while it sends (articles.ndjson_batches), so a
            # slow client also makes the server wait to write. It may wait as long as gunicorn
            # lets the worker (GUNICORN_TIMEOUT), which stays the one limit on an export.
            cur.execute(
                "SET SESSION net_write_timeout = GREATEST(@@SESSION.net_write_timeout, %s)",
                (settings.GUNICORN_TIMEOUT,),
            )
            if settings.DB_TIME_ZONE:
                cur.execute("SET time_zone = %s", (settings.DB_TIME_ZONE,))
        if len(settings.db_addresses) > 1:
            # A Galera node that lost the primary component still accepts connections but
            # refuses queries (1047): find out now, and try the next host instead.
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
    except BaseException:
        with contextlib.suppress(Exception):
            conn.close()
        raise
    return conn


class Database:
    """Hands out this worker's connection; see the module docstring."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._local = threading.local()
        self.outages = OutageLog("requests")

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        return DatabaseUnavailable(explain(exc, self.settings))

    def not_ready(self, conn: pymysql.Connection, exc: BaseException) -> SchemaNotReady | None:
        """A SchemaNotReady when `exc` (a missing table or column) comes from pending
        migrations; None when the schema is current (then it is a bug: let it be a 500)."""
        if error_code(exc) not in _MISSING_TABLE_OR_COLUMN:
            return None
        try:
            reason = schema_behind(conn)
        except pymysql.err.MySQLError:
            return None
        return SchemaNotReady(f"{reason}; run {MIGRATE_COMMAND}") if reason else None

    def _current(self) -> pymysql.Connection | None:
        conn = getattr(self._local, "conn", None)
        # A connection inherited across fork belongs to the parent: never share its socket.
        if conn is not None and getattr(self._local, "pid", None) != os.getpid():
            self._local.conn = None
            return None
        return conn

    def connection(self) -> pymysql.Connection:
        conn = self._current()
        if conn is not None and not conn.open:  # PyMySQL closed it after an error of its own
            self._local.conn = conn = None
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
                if error_code(exc) == 1049:
                    raise SchemaNotReady(
                        f"database {self.settings.DB_NAME} does not exist; run {MIGRATE_COMMAND}"
                    ) from exc
                raise self.unavailable(exc) from exc
            self.outages.recovered()
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
        except pymysql.err.MySQLError as exc:
            if isinstance(exc, CONNECTION_ERRORS):
                if is_conflict(exc):
                    raise DatabaseBusy(describe(exc)) from exc
                if is_unavailable(exc):
                    self.lost(exc)
                    raise self.unavailable(exc) from exc
            if (not_ready := self.not_ready(conn, exc)) is not None:
                raise not_ready from exc
            raise

    def lost(self, exc: BaseException) -> None:
        """Throw the connection away; if its host is gone, move on to the next host."""
        self.discard()
        if host_lost(exc):
            failed_over(self.settings)

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
            if is_conflict(exc) or not is_unavailable(exc):
                # A lock wait timeout rolls back only its statement: end the transaction here.
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.rollback()
                if is_conflict(exc):
                    raise DatabaseBusy(describe(exc)) from exc
                if (not_ready := self.not_ready(conn, exc)) is not None:
                    raise not_ready from exc
                raise
            self.lost(exc)
            raise self.unavailable(exc) from exc
        except pymysql.err.ProgrammingError as exc:
            with contextlib.suppress(*CONNECTION_ERRORS):
                conn.rollback()
            if (not_ready := self.not_ready(conn, exc)) is not None:
                raise not_ready from exc
            raise
        except BaseException:
            try:
                conn.rollback()
            except CONNECTION_ERRORS:
                self.discard()
            raise

    def retrying(
        self, work: Callable[[pymysql.cursors.DictCursor], T], *, atomic: bool = True
    ) -> T:
        """Run `work(cursor)`, in one transaction when `atomic`, again from the start after a
        deadlock, certification conflict or lock wait timeout, up to RETRY_ATTEMPTS times with a
        `conflict_pause` before each retry; then DatabaseBusy. `work` must be safe to run again,
        which a rolled-back transaction or a single statement is."""
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                if atomic:
                    with self.transaction() as cur:
                        return work(cur)
                with self.cursor() as cur:
                    return work(cur)
            except DatabaseBusy:
                if attempt == RETRY_ATTEMPTS:
                    raise
            time.sleep(conflict_pause(attempt))  # only after a conflict: see RETRY_ATTEMPTS
        raise AssertionError("unreachable")
