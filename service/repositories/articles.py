"""articles: keyset pages for the export (newest first, by id) and the import upsert."""

from __future__ import annotations

import re
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

# The NDJSON export's page, each line formed by the database: byte for byte
# `schemas.article_ndjson_line()` of the row (same keys, order, separators; strings through
# JSON_QUOTE, which escapes exactly what json.dumps escapes, except that MariaDB writes the hex
# digits of \u00XX escapes in upper case: `ndjson_page` lowers them). The page comes back as ONE
# row (its size, its last id and its lines concatenated, as bytes), so the driver parses three
# values per page instead of six per row: that per-row parsing in Python was the export's cost.
# Only CONCAT, JSON_QUOTE, DATE_FORMAT and GROUP_CONCAT: functions of both MariaDB (10.2+) and
# MySQL (5.7+/8). GROUP_CONCAT is bounded by group_concat_max_len (raised per session by
# `ndjson_page`) and by max_allowed_packet: a page cut short by either is detected (fewer lines
# than rows, or NULL) and read again row by row (NDJSON_LINES).
_NDJSON_LINE = """
CONCAT('{"id": ', id,
       ', "title": ', JSON_QUOTE(title),
       ', "url": ', JSON_QUOTE(url),
       ', "language": ', JSON_QUOTE(language),
       ', "summary": ', JSON_QUOTE(summary),
       ', "updated_at": "', DATE_FORMAT(updated_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ'), '"}\n')
"""
_PAGE_FILTER = """
  FROM articles
 WHERE (%(before_id)s IS NULL OR id < %(before_id)s)
   AND (%(since)s IS NULL OR updated_at >= %(since)s)
 ORDER BY id DESC
 LIMIT %(limit)s
"""
NDJSON_PAGE = (
    "SELECT COUNT(*) AS n, MIN(id) AS last_id, "
    "CAST(GROUP_CONCAT(line ORDER BY id DESC SEPARATOR '') AS BINARY) AS body "
    "FROM (SELECT id, " + _NDJSON_LINE + " AS line" + _PAGE_FILTER + ") AS page"
)
NDJSON_LINES = "SELECT id, CAST(" + _NDJSON_LINE + " AS BINARY) AS line" + _PAGE_FILTER

# The JSON export's page (format=json): each article as the JSON object the body's encoder makes
# of `schemas.dump_article(row)` (compact separators, non-ASCII as is), formed by the database, one
# column per row: the driver parses one value per row instead of six, and no datetime.
_JSON_OBJECT = """
CONCAT('{"id":', id,
       ',"title":', JSON_QUOTE(title),
       ',"url":', JSON_QUOTE(url),
       ',"language":', JSON_QUOTE(language),
       ',"summary":', JSON_QUOTE(summary),
       ',"updated_at":"', DATE_FORMAT(updated_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ'), '"}')
"""
JSON_OBJECTS = "SELECT CAST(" + _JSON_OBJECT + " AS BINARY) AS object" + _PAGE_FILTER
_OBJECT_ID = re.compile(rb'^\{"id":(\d+),')
# Large enough for a page of typical articles in one value; a page beyond it is read row by row.
NDJSON_GROUP_BYTES = 64 * 1024 * 1024
# MariaDB writes \u000B where json.dumps writes \u000b. Every backslash in a line starts an
# escape (the template has none of its own), so scanning escapes from the left (an escaped
# backslash is consumed whole) finds exactly the \u00XX escapes, never text that looks like one.
_ESCAPE = re.compile(rb"\\\\|\\u00[0-9A-F]{2}")


def _lower_hex(match: re.Match) -> bytes:
    return match[0].lower()


def _json_escapes_as_python(lines: bytes) -> bytes:
    if b"\\u00" not in lines:  # the usual case: no control character in the page
        return lines
    return _ESCAPE.sub(_lower_hex, lines)


def set_ndjson_session(cur) -> None:
    """Raise this connection's GROUP_CONCAT bound for NDJSON_PAGE (once per export)."""
    cur.execute("SET SESSION group_concat_max_len = %(bytes)s", {"bytes": NDJSON_GROUP_BYTES})


def ndjson_page(
    cur, *, before_id: int | None, since: datetime | None, limit: int
) -> tuple[int, int | None, bytes]:
    """One keyset page as NDJSON bytes: (rows in it, the last row's id, the lines)."""
    params = {"before_id": before_id, "since": naive_utc(since), "limit": limit}
    cur.execute(NDJSON_PAGE, params)
    row = cur.fetchone()
    count, last_id, body = row["n"], row["last_id"], row["body"]
    if count and (body is None or body.count(b"\n") != count):
        # Cut short by group_concat_max_len or max_allowed_packet: the same page, row by row.
        cur.execute(NDJSON_LINES, params)
        rows = cur.fetchall()
        body = b"".join(r["line"] for r in rows)
    return count, last_id, _json_escapes_as_python(body or b"")


def json_page(cur, *, before_id: int | None, since: datetime | None, limit: int) -> list[bytes]:
    """One keyset page as JSON objects (bytes), newest first."""
    params = {"before_id": before_id, "since": naive_utc(since), "limit": limit}
    cur.execute(JSON_OBJECTS, params)
    return [_json_escapes_as_python(row["object"]) for row in cur.fetchall()]


def object_id(json_object: bytes) -> int:
    """The id of an article object of json_page (its first member)."""
    return int(_OBJECT_ID.match(json_object)[1])


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
