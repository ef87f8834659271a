"""articles: keyset pages for the export (newest first, by id) and the import upsert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pymysql.cursors

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

# The NDJSON export's lines, formed by the database, one column per row: byte for byte
# `json.dumps(schemas.ArticleOut().dump(row), ensure_ascii=False) + "\n"` (keys, order and
# separators; strings through JSON_QUOTE, which escapes exactly what json.dumps escapes, except
# that MariaDB writes the hex digits of \u00XX escapes in upper case: `_json_escapes_as_python`
# lowers them). The driver parses one value per row instead of six, and no datetime; the server
# sends rows while the worker reads the earlier ones. Only CONCAT, JSON_QUOTE and DATE_FORMAT:
# functions of both MariaDB (10.2+) and MySQL (5.7+/8).
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
NDJSON_LINES = "SELECT CAST(" + _NDJSON_LINE + " AS BINARY) AS line" + _PAGE_FILTER

# The JSON export's page (format=json): each article as the JSON object the body's encoder makes
# of `schemas.ArticleOut().dump(row)` (compact separators, non-ASCII as is), formed by the
# database, one column per row: the driver parses one value per row instead of six, no datetime.
_JSON_OBJECT = """
CONCAT('{"id":', id,
       ',"title":', JSON_QUOTE(title),
       ',"url":', JSON_QUOTE(url),
       ',"language":', JSON_QUOTE(language),
       ',"summary":', JSON_QUOTE(summary),
       ',"updated_at":"', DATE_FORMAT(updated_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ'), '"}')
"""
JSON_OBJECTS = "SELECT CAST(" + _JSON_OBJECT + " AS BINARY) AS object" + _PAGE_FILTER
# The id an NDJSON line or a JSON object starts with (`{"id": 51, ...` or `{"id":51,...`).
_FIRST_ID = re.compile(rb'^\{"id": ?(\d+),')
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


def _column(cur, query: str, params: dict) -> list[bytes]:
    """The one column of every row of `query`, through a tuple cursor on the same connection: a
    dict per row is the costliest part of reading thousands of rows."""
    with cur.connection.cursor(pymysql.cursors.Cursor) as plain:
        plain.execute(query, params)
        return [row[0] for row in plain.fetchall()]


def ndjson_batches(
    cur, *, before_id: int | None, since: datetime | None, limit: int, batch: int
) -> Iterator[tuple[int, int, bytes]]:
    """Up to `limit` rows of one keyset query as NDJSON, read unbuffered `batch` rows at a time:
    (rows in the batch, its last row's id, its lines). The server forms the next rows while the
    worker sends the earlier ones, where a query per `batch` rows would leave the server idle
    between queries. Closed early (the client left), it reads what is left of the query, at most
    `limit` rows, so that the connection can serve the next request."""
    params = {"before_id": before_id, "since": naive_utc(since), "limit": limit}
    unbuffered = cur.connection.cursor(pymysql.cursors.SSCursor)
    try:
        unbuffered.execute(NDJSON_LINES, params)
        while rows := unbuffered.fetchmany(batch):
            lines = [row[0] for row in rows]
            yield len(lines), object_id(lines[-1]), _json_escapes_as_python(b"".join(lines))
    finally:
        _finish(unbuffered)


def _finish(unbuffered: pymysql.cursors.SSCursor) -> None:
    """Read what is left of an unbuffered query. On a connection already lost there is nothing
    to read: PyMySQL's close would read from its closed socket and raise AttributeError over the
    error that matters; a connection lost meanwhile is left closed (the next request opens
    another, db.Database.connection)."""
    try:
        if unbuffered.connection is not None and unbuffered.connection.open:
            unbuffered.close()
    except pymysql.err.MySQLError:
        pass
    finally:
        unbuffered.connection = None  # else PyMySQL tries again when the cursor is collected


def json_page(cur, *, before_id: int | None, since: datetime | None, limit: int) -> list[bytes]:
    """One keyset page as JSON objects (bytes), newest first."""
    params = {"before_id": before_id, "since": naive_utc(since), "limit": limit}
    return [_json_escapes_as_python(line) for line in _column(cur, JSON_OBJECTS, params)]


def object_id(json_object: bytes) -> int:
    """The id of an article line or object (its first member)."""
    return int(_FIRST_ID.match(json_object)[1])


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


def page(cur, *, before_id: int | None, since: datetime | None, limit: int) -> list[dict]:
    """One keyset page of rows (the reference the formed lines and objects are tested against)."""
    cur.execute(PAGE, {"before_id": before_id, "since": naive_utc(since), "limit": limit})
    return cur.fetchall()


def upsert_many(cur, articles: list[dict]) -> int:
    """Insert or update by URL. PyMySQL sends the batch as one multi-row INSERT."""
    rows = [{**a, "updated_at": naive_utc(a["updated_at"])} for a in articles]
    return cur.executemany(UPSERT, rows) or 0
