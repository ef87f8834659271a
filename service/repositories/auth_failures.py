"""auth_failures: the shared per-address, per-minute counter of failed authentications."""

from __future__ import annotations

from datetime import datetime

# A salt per minute, created by whichever worker needs it first; the others read the same one.
CREATE_SALT = """
INSERT IGNORE INTO auth_failure_salts (window_start, salt) VALUES (%(window)s, %(salt)s)
"""
READ_SALT = "SELECT salt FROM auth_failure_salts WHERE window_start = %(window)s"

# One atomic statement: the new count comes back in the OK packet (LAST_INSERT_ID(expr)), so
# concurrent failures from one address on any number of workers are each counted once.
COUNT_FAILURE = """
INSERT INTO auth_failures (client_hash, window_start, failures)
VALUES (%(client_hash)s, %(window)s, LAST_INSERT_ID(1))
ON DUPLICATE KEY UPDATE failures = LAST_INSERT_ID(failures + 1)
"""

PURGE_FAILURES = "DELETE FROM auth_failures WHERE window_start < %(window)s"
PURGE_SALTS = "DELETE FROM auth_failure_salts WHERE window_start < %(window)s"


def salt_for(cur, window: datetime, fresh_salt: bytes) -> bytes:
    cur.execute(CREATE_SALT, {"window": window, "salt": fresh_salt})
    cur.execute(READ_SALT, {"window": window})
    return bytes(cur.fetchone()["salt"])


def count_failure(cur, client_hash: bytes, window: datetime) -> int:
    """Count one failure; returns the address's failures in this window, this one included."""
    cur.execute(COUNT_FAILURE, {"client_hash": client_hash, "window": window})
    cur.execute("SELECT LAST_INSERT_ID() AS n")
    return int(cur.fetchone()["n"])


def purge_before(cur, window: datetime) -> None:
    cur.execute(PURGE_FAILURES, {"window": window})
    cur.execute(PURGE_SALTS, {"window": window})
