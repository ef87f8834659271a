"""The migration lock: one `migrate` at a time per database, on one server or on a whole cluster.

`GET_LOCK()` is not enough on a Galera cluster: it is local to the node that grants it, so two
instances migrating through two different nodes would both get it. The lock is a row instead, in a
table that replicates like any other: inserting it is the acquisition. On one server, a second
insert of the same primary key waits for the first and fails as a duplicate; on a cluster, two
nodes inserting it at once collide at certification and one of them gets a deadlock error (1213),
or, if the winner's row has already arrived, a duplicate. Either way exactly one run holds it.

A run that dies keeps the row, so the row is a lease: it expires unless its holder renews it
(`renew`, after every migration step), and an expired lease is taken over by the next run.
Times are the database's (`UTC_TIMESTAMP`), so every instance judges expiry by the same clock.

On a single server (not a Galera node) a dead holder is also recognised at once: the holder keeps
a `GET_LOCK` named after it, which the server frees when the holder's connection ends, so the next
`migrate` after a killed one resumes without waiting for the lease. (On a cluster that lock is
visible on the holder's node only, so there the lease alone decides.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator

import pymysql

CREATE_LOCK_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations_lock (
  id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  holder VARCHAR(100) NOT NULL,
  acquired_at DATETIME(6) NOT NULL,
  expires_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
""".strip()

# Long enough for any single migration statement between two renewals.
LEASE_SECONDS = 600
WAIT_SECONDS = 60
_POLL_SECONDS = 0.25
_DUPLICATE_KEY = 1062
_CONFLICT_CODES = frozenset({1205, 1213})  # lock wait timeout; deadlock or certification conflict


class LockNotGranted(RuntimeError):
    """Another migration holds the lock and did not release it within the wait."""


def new_holder() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _liveness_lock(cur, holder: str) -> str:
    cur.execute("SELECT DATABASE() AS db")
    row = cur.fetchone()
    database = (row["db"] if isinstance(row, dict) else row[0]) or ""
    return "wme_migrate:" + hashlib.sha256(f"{database}/{holder}".encode()).hexdigest()[:40]


def _clustered(cur) -> bool:
    try:
        cur.execute("SELECT @@wsrep_on AS on_")
    except pymysql.err.OperationalError:  # MySQL: no such variable, so no Galera
        return False
    row = cur.fetchone()
    return bool(row["on_"] if isinstance(row, dict) else row[0])


def _clear_dead_holder(cur) -> None:
    """Single server only: a holder whose liveness lock is free has lost its connection."""
    if _clustered(cur):
        return
    cur.execute("SELECT holder FROM schema_migrations_lock WHERE id = 1")
    row = cur.fetchone()
    if row is None:
        return
    holder = row["holder"] if isinstance(row, dict) else row[0]
    cur.execute("SELECT IS_USED_LOCK(%(name)s) AS used", {"name": _liveness_lock(cur, holder)})
    used = cur.fetchone()
    if (used["used"] if isinstance(used, dict) else used[0]) is None:
        cur.execute(
            "DELETE FROM schema_migrations_lock WHERE id = 1 AND holder = %(holder)s",
            {"holder": holder},
        )


def try_acquire(conn: pymysql.Connection, holder: str, lease: int = LEASE_SECONDS) -> bool:
    """One attempt: take the lock if it is free or its lease expired. True if `holder` has it."""
    with conn.cursor() as cur:
        # Taken before the row, so that no instant exists where the row is ours but looks dead.
        liveness = _liveness_lock(cur, holder)
        cur.execute("SELECT GET_LOCK(%(name)s, 0)", {"name": liveness})
        try:
            _clear_dead_holder(cur)
            cur.execute(
                "DELETE FROM schema_migrations_lock WHERE id = 1 AND expires_at < UTC_TIMESTAMP(6)"
            )
            cur.execute(
                "INSERT INTO schema_migrations_lock (id, holder, acquired_at, expires_at) "
                "VALUES (1, %(holder)s, UTC_TIMESTAMP(6), "
                "UTC_TIMESTAMP(6) + INTERVAL %(lease)s SECOND)",
                {"holder": holder, "lease": lease},
            )
            conn.commit()
            return True
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] != _DUPLICATE_KEY:
                raise
        except pymysql.err.OperationalError as exc:
            if exc.args[0] not in _CONFLICT_CODES:
                raise
        conn.rollback()
        cur.execute("SELECT RELEASE_LOCK(%(name)s)", {"name": liveness})
        return False


def renew(conn: pymysql.Connection, holder: str, lease: int = LEASE_SECONDS) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE schema_migrations_lock SET expires_at = UTC_TIMESTAMP(6) + INTERVAL "
            "%(lease)s SECOND WHERE id = 1 AND holder = %(holder)s",
            {"holder": holder, "lease": lease},
        )
    conn.commit()


def release(conn: pymysql.Connection, holder: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM schema_migrations_lock WHERE id = 1 AND holder = %(holder)s",
            {"holder": holder},
        )
        conn.commit()
        cur.execute("SELECT RELEASE_LOCK(%(name)s)", {"name": _liveness_lock(cur, holder)})


@contextlib.contextmanager
def held(conn: pymysql.Connection, *, wait: float = WAIT_SECONDS) -> Iterator[str]:
    """Hold the migration lock for the block; yields the holder name (for `renew`)."""
    with conn.cursor() as cur:
        cur.execute(CREATE_LOCK_TABLE)
    holder = new_holder()
    deadline = time.monotonic() + wait
    while not try_acquire(conn, holder):
        if time.monotonic() >= deadline:
            raise LockNotGranted(
                f"another migration is running (lock not granted within {wait:g} s)"
            )
        time.sleep(_POLL_SECONDS)
    try:
        yield holder
    finally:
        # Best effort: if the connection is gone, the lease expires on its own.
        with contextlib.suppress(pymysql.err.MySQLError):
            release(conn, holder)
