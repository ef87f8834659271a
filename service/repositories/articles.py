"""articles: keyset pages for the export (newest first, by id) and the import upsert."""

from __future__ import annotations

from datetime import datetime

from service.repositories import naive_utc

# Newest first by id: ids only grow, and an upsert never changes a row's id, so a reader paging
# with `id < cursor` never sees a row twice nor misses one that existed when it started, however
# many rows are inserted meanwhile.
PAGE = """
SELECT id, title, url, language, summary, updated_at
  FROM articles
 WHERE (%(before_id)s IS NULL OR id < %(before_id)s)
   AND (%(since)s IS NULL OR updated_at >= %(since)s)
 ORDER BY id DESC
 LIMIT %(limit)s
"""

# The NDJSON export's page: PAGE's rows, with updated_at already the RFC 3339 text that
# schemas.UtcDateTime makes of it (the column is DATETIME, whole seconds), so that neither PyMySQL
# nor Python parses and re-formats a datetime per row.
PAGE_FOR_STREAM = """
SELECT id, title, url, language, summary,
       DATE_FORMAT(updated_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ') AS updated_at
  FROM articles
 WHERE (%(before_id)s IS NULL OR id < %(before_id)s)
   AND (%(since)s IS NULL OR updated_at >= %(since)s)
 ORDER BY id DESC
 LIMIT %(limit)s
"""

# VALUES() is deprecated on MySQL 8.0.20+ but still works there, and MariaDB has no row alias
# (`AS new`): it is the one spelling both accept.
UPSERT = """
INSERT INTO articles (title, url, language, summary, updated_at)
VALUES (%(title)s, %(url)s, %(language)s, %(summary)s, %(updated_at)s)
ON DUPLICATE KEY UPDATE
  title = VALUES(title),
  language = VALUES(language),
  summary = VALUES(summary),
  updated_at = VALUES(updated_at)
"""


def page(
    cur, *, before_id: int | None, since: datetime | None, limit: int, dates_as_text: bool = False
) -> list[dict]:
    """One keyset page. `dates_as_text`: updated_at as RFC 3339 text (PAGE_FOR_STREAM)."""
    query = PAGE_FOR_STREAM if dates_as_text else PAGE
    cur.execute(query, {"before_id": before_id, "since": naive_utc(since), "limit": limit})
    return cur.fetchall()


def upsert_many(cur, articles: list[dict]) -> int:
    """Insert or update by URL. PyMySQL sends the batch as one multi-row INSERT."""
    rows = [{**a, "updated_at": naive_utc(a["updated_at"])} for a in articles]
    return cur.executemany(UPSERT, rows) or 0
