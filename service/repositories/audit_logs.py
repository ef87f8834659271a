"""audit_logs: batched inserts, reads through masked_audit_logs only, and retention.

The service account may only INSERT into audit_logs (it appends, never reads nor erases there);
everything it shows comes from the view. The purge runs as its own account (`wme_retention` in
sql/roles.sql).
"""

from __future__ import annotations

from datetime import datetime

from service.repositories import naive_utc

# Idempotent: `audit_uid` is unique (0005_audit_write_once.sql), so a batch sent again after its
# answer was lost skips the rows already committed. IGNORE needs no privilege beyond INSERT (an
# ON DUPLICATE KEY UPDATE would need UPDATE on audit_logs); every value is already cut to its
# column's size, so IGNORE hides nothing else.
INSERT = """
INSERT IGNORE INTO audit_logs
  (key_id, key_prefix, method, endpoint, response_code, response_time_ms, `timestamp`,
   request_id, error_code, audit_uid)
VALUES
  (%(key_id)s, %(key_prefix)s, %(method)s, %(endpoint)s, %(response_code)s,
   %(response_time_ms)s, %(timestamp)s, %(request_id)s, %(error_code)s, %(audit_uid)s)
"""

# `owner_user_id` NULL means every row (admin scope); otherwise the rows of that user's keys.
LIST_MASKED = """
SELECT id, masked_key, endpoint, method, response_code, response_time_ms, `timestamp`,
       request_id, error_code
  FROM masked_audit_logs
 WHERE (%(owner_user_id)s IS NULL
        OR key_id IN (SELECT id FROM api_keys WHERE user_id = %(owner_user_id)s))
   AND (%(before_id)s IS NULL OR id < %(before_id)s)
   AND (%(endpoint)s IS NULL OR endpoint = %(endpoint)s)
   AND (%(status)s IS NULL OR response_code = %(status)s)
   AND (%(since)s IS NULL OR `timestamp` >= %(since)s)
 ORDER BY id DESC
 LIMIT %(limit)s
"""

PURGE_BATCH = """
DELETE FROM audit_logs WHERE `timestamp` < %(cutoff)s ORDER BY id LIMIT %(batch)s
"""


def insert_many(cur, rows: list[dict]) -> int:
    return cur.executemany(INSERT, rows) or 0


def list_masked(
    cur,
    *,
    owner_user_id: int | None,
    before_id: int | None,
    endpoint: str | None,
    status: int | None,
    since: datetime | None,
    limit: int,
) -> list[dict]:
    cur.execute(
        LIST_MASKED,
        {
            "owner_user_id": owner_user_id,
            "before_id": before_id,
            "endpoint": endpoint,
            "status": status,
            "since": naive_utc(since),
            "limit": limit,
        },
    )
    return cur.fetchall()


def purge_batch(cur, cutoff: datetime, batch: int) -> int:
    return cur.execute(PURGE_BATCH, {"cutoff": naive_utc(cutoff), "batch": batch})
