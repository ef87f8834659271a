"""audit_logs: batched inserts, reads through masked_audit_logs only, and retention.

The service account may only INSERT into audit_logs (it appends, never reads nor erases there);
everything it shows comes from the view. The purge runs as its own account (`wme_retention` in
sql/roles.sql).
"""

from __future__ import annotations

import json
from datetime import datetime

from service.repositories import naive_utc

# Idempotent: `audit_uid` is unique (0005_audit_write_once.sql), so a batch sent again after its
# answer was lost skips the rows already committed. IGNORE needs no privilege beyond INSERT (an
# ON DUPLICATE KEY UPDATE would need UPDATE on audit_logs); every value is already cut to its
# column's size, so IGNORE hides nothing else.
#
# A batch is one parameter: a JSON array of rows (`batch_json`), which JSON_TABLE (MariaDB 10.6+,
# MySQL 8.0.4+) turns back into rows, in order. Encoding it is one C call; binding ten values per
# row through the driver cost the worker two thirds more (docs/performance.md, "Third step").
# JSON_TABLE reads no table, so the INSERT privilege on audit_logs is still all the writer needs.
# The JSON travels in hex: the driver escapes a text parameter character by character in Python's
# slow translate path (every quote of the JSON needs a backslash), about half of the writer's work
# per row (docs/performance.md, "Fourth step"); hex digits need no escape, and UNHEX gives the
# bytes back.
INSERT_BATCH = """
INSERT IGNORE INTO audit_logs
  (key_id, key_prefix, method, endpoint, response_code, response_time_ms, `timestamp`,
   request_id, error_code, audit_uid)
SELECT key_id, key_prefix, method, endpoint, response_code, response_time_ms, `timestamp`,
       request_id, error_code, audit_uid
  FROM JSON_TABLE(CONVERT(UNHEX(%(batch_hex)s) USING utf8mb4), '$[*]' COLUMNS (
         position FOR ORDINALITY,
         key_id INT PATH '$[0]',
         key_prefix VARCHAR(6) CHARACTER SET utf8mb4 PATH '$[1]',
         method VARCHAR(10) CHARACTER SET utf8mb4 PATH '$[2]',
         endpoint VARCHAR(255) CHARACTER SET utf8mb4 PATH '$[3]',
         response_code SMALLINT PATH '$[4]',
         response_time_ms INT PATH '$[5]',
         `timestamp` DATETIME(6) PATH '$[6]',
         request_id VARCHAR(64) CHARACTER SET utf8mb4 PATH '$[7]',
         error_code VARCHAR(32) CHARACTER SET utf8mb4 PATH '$[8]',
         audit_uid CHAR(32) CHARACTER SET utf8mb4 PATH '$[9]'
       )) AS batch
 ORDER BY position
"""
_ENCODER = json.JSONEncoder(separators=(",", ":"))


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


def batch_json(rows: list[dict]) -> str:
    """The rows as INSERT_BATCH reads them: one array per row, values in its column order, the
    time as `YYYY-MM-DD hh:mm:ss[.ffffff]` (UTC; stored to the millisecond, DATETIME(3))."""
    return _ENCODER.encode(
        [
            [
                row["key_id"],
                row["key_prefix"],
                row["method"],
                row["endpoint"],
                row["response_code"],
                row["response_time_ms"],
                naive_utc(row["timestamp"]).isoformat(sep=" "),
                row["request_id"],
                row["error_code"],
                row["audit_uid"],
            ]
            for row in rows
        ]
    )


def insert_many(cur, rows: list[dict]) -> int:
    """Insert the rows in one statement; returns how many were new (a retried batch skips the
    rows already committed)."""
    return cur.execute(INSERT_BATCH, {"batch_hex": batch_json(rows).encode().hex()})


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
