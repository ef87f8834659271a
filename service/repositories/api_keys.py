"""api_keys: lookup by hash, the atomic quota UPDATE, and key management for the CLI."""

from __future__ import annotations

from datetime import date, datetime

_KEY_COLUMNS = """
    k.id, k.user_id, k.key_prefix, k.scopes, k.label, k.rate_limit, k.calls_made, k.last_reset,
    k.is_valid, k.expires_at, k.revoked_at, k.created_at, k.weak, u.is_active AS user_active
"""

# Every request runs this: it reads only what authentication, scope, quota and audit use (PyMySQL
# parses a descriptor for each column of each result, in Python; label and created_at are the
# CLI's).
_AUTH_COLUMNS = """
    k.id, k.user_id, k.key_prefix, k.scopes, k.rate_limit, k.calls_made, k.last_reset,
    k.is_valid, k.expires_at, k.revoked_at, u.is_active AS user_active
"""

FIND_BY_HASH = (
    "SELECT" + _AUTH_COLUMNS + "FROM api_keys k LEFT JOIN users u ON u.id = k.user_id "
    "WHERE k.key_hash = %(key_hash)s"
)

# The quota rule (service/quota.py explains it). MySQL and MariaDB evaluate single-table UPDATE
# assignments left to right, so `calls_made` is computed from the OLD `last_reset`, and only then
# is `last_reset` moved forward (never backwards, thanks to GREATEST). LAST_INSERT_ID(expr) hands
# the new count back in the same round trip (the OK packet's insert id), so the headers need no
# second query. Affected rows: 1 = admitted, 0 = refused (or no such key). The UPDATE itself
# re-checks everything that can revoke a key (valid, not revoked, not expired, owner active, the
# route's scope), the same rules as auth.check_usable/require_scope, so an admission never rests
# on a row read earlier (service/key_cache.py).
# A limit of 0 or less admits nothing, on a new day too: `rate_limit > 0` is required whatever
# the stored day.
CONSUME_QUOTA = """
UPDATE api_keys
   SET calls_made = LAST_INSERT_ID(
         IF(last_reset IS NULL OR last_reset < %(today)s, 1, calls_made + 1)),
       last_reset = GREATEST(COALESCE(last_reset, %(today)s), %(today)s)
 WHERE id = %(key_id)s
   AND is_valid <> 0 AND revoked_at IS NULL
   AND (expires_at IS NULL OR expires_at >= %(today)s)
   AND (%(scope)s IS NULL OR FIND_IN_SET(%(scope)s, scopes) > 0 OR FIND_IN_SET('admin', scopes) > 0)
   AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = api_keys.user_id AND u.is_active = 0)
   AND rate_limit > 0
   AND (last_reset IS NULL OR last_reset < %(today)s OR calls_made < rate_limit)
"""

# Gives back the unit of a request the service failed after charging (service/metering.py): only
# on the day it was charged (after midnight the count is a new day's), never below 0.
REFUND_QUOTA = """
UPDATE api_keys
   SET calls_made = calls_made - 1
 WHERE id = %(key_id)s
   AND last_reset = %(day)s
   AND calls_made > 0
"""


def find_by_hash(cur, key_hash: str) -> dict | None:
    cur.execute(FIND_BY_HASH, {"key_hash": key_hash})
    row = cur.fetchone()
    if row is not None:
        row["scopes"] = _scopes(row["scopes"])
    return row


def consume_quota(
    cur, key_id: int, today: date, scope: str | None = None
) -> tuple[bool, int | None]:
    """Try to take one unit of today's quota for a route needing `scope`. Returns (admitted,
    count after the update)."""
    params = {"key_id": key_id, "today": today, "scope": scope}
    admitted = cur.execute(CONSUME_QUOTA, params) == 1
    return admitted, (cur.lastrowid if admitted else None)


def refund_quota(cur, key_id: int, day: date) -> bool:
    """Give back one unit charged on `day`. True if a unit was given back."""
    return cur.execute(REFUND_QUOTA, {"key_id": key_id, "day": day}) == 1


def create(
    cur,
    *,
    user_id: int,
    key_hash: str,
    key_prefix: str,
    scopes: set[str],
    rate_limit: int,
    expires_at: date | None,
    label: str | None,
    now: datetime,
) -> int:
    cur.execute(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, label, rate_limit, "
        "calls_made, is_valid, expires_at, last_reset, created_at) VALUES (%(user_id)s, "
        "%(key_hash)s, %(key_prefix)s, %(scopes)s, %(label)s, %(rate_limit)s, 0, 1, "
        "%(expires_at)s, NULL, %(now)s)",
        {
            "user_id": user_id,
            "key_hash": key_hash,
            "key_prefix": key_prefix,
            "scopes": ",".join(sorted(scopes)),
            "label": label,
            "rate_limit": rate_limit,
            "expires_at": expires_at,
            "now": now.replace(tzinfo=None),
        },
    )
    return cur.lastrowid


def list_all(cur) -> list[dict]:
    cur.execute(
        "SELECT" + _KEY_COLUMNS + "FROM api_keys k LEFT JOIN users u ON u.id = k.user_id "
        "ORDER BY k.id"
    )
    rows = cur.fetchall()
    for row in rows:
        row["scopes"] = _scopes(row["scopes"])
    return rows


def find_by_id(cur, key_id: int) -> dict | None:
    cur.execute(
        "SELECT" + _KEY_COLUMNS + ", u.username FROM api_keys k "
        "LEFT JOIN users u ON u.id = k.user_id WHERE k.id = %(key_id)s",
        {"key_id": key_id},
    )
    row = cur.fetchone()
    if row is not None:
        row["scopes"] = _scopes(row["scopes"])
    return row


# Support changes, one statement each: the row is changed only if it exists.
UPDATE_LIMIT = "UPDATE api_keys SET rate_limit = %(value)s WHERE id = %(key_id)s"
UPDATE_SCOPES = "UPDATE api_keys SET scopes = %(value)s WHERE id = %(key_id)s"
UPDATE_EXPIRY = "UPDATE api_keys SET expires_at = %(value)s WHERE id = %(key_id)s"
UPDATE_LABEL = "UPDATE api_keys SET label = %(value)s WHERE id = %(key_id)s"
_UPDATES = {
    "rate_limit": UPDATE_LIMIT,
    "scopes": UPDATE_SCOPES,
    "expires_at": UPDATE_EXPIRY,
    "label": UPDATE_LABEL,
}


def update(cur, key_id: int, changes: dict) -> None:
    """Apply `changes` (rate_limit, scopes, expires_at, label) to one key; the caller commits."""
    for column, value in changes.items():
        if column == "scopes":
            value = ",".join(sorted(value))
        cur.execute(_UPDATES[column], {"key_id": key_id, "value": value})


def reset_usage(cur, key_id: int) -> None:
    """Today's count back to zero (a support ticket): the next request starts a fresh count."""
    cur.execute(
        "UPDATE api_keys SET calls_made = 0, last_reset = NULL WHERE id = %(key_id)s",
        {"key_id": key_id},
    )


def end_overlap(cur, key_id: int, last_day: date) -> None:
    """The old key of a rotation works through `last_day` (an earlier expiry is kept)."""
    cur.execute(
        "UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, %(last_day)s), %(last_day)s) "
        "WHERE id = %(key_id)s",
        {"key_id": key_id, "last_day": last_day},
    )


def revoke(cur, key_id: int, now: datetime) -> bool:
    changed = cur.execute(
        "UPDATE api_keys SET is_valid = 0, revoked_at = %(now)s "
        "WHERE id = %(key_id)s AND revoked_at IS NULL",
        {"key_id": key_id, "now": now.replace(tzinfo=None)},
    )
    return changed == 1


def rehash(cur, key_id: int, old_hash: str, new_hash: str) -> bool:
    """Move a key to the current secret's hash (KEY_HASH_SECRET rotation); only if unchanged."""
    changed = cur.execute(
        "UPDATE api_keys SET key_hash = %(new)s WHERE id = %(key_id)s AND key_hash = %(old)s",
        {"key_id": key_id, "old": old_hash, "new": new_hash},
    )
    return changed == 1


def user_exists(cur, user_id: int) -> bool:
    cur.execute("SELECT 1 AS found FROM users WHERE id = %(user_id)s", {"user_id": user_id})
    return cur.fetchone() is not None


def _scopes(value) -> frozenset[str]:
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return frozenset(s for s in (value or "").split(",") if s)
