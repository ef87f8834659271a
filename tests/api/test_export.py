"""GET /api/export: real rows, newest first, opaque keyset cursors, `since`, and NDJSON streaming.

Every parameter is validated: a bad one is a 400 that names it, never a silent default.
"""

from __future__ import annotations

import base64
import json
import warnings

import pytest

from assertions import DEF, assert_error, names_field
from service.blueprints import api as api_blueprint
from service.repositories import articles as articles_repo

FIELDS = {"id", "title", "url", "language", "summary", "updated_at"}


def expected_rows(sql, where: str = "1=1", params=None) -> list[dict]:
    rows = sql.all(
        "SELECT id, title, url, language, summary, updated_at FROM articles "
        f"WHERE {where} ORDER BY id DESC",
        params,
    )
    for row in rows:
        row["updated_at"] = row["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return rows


def export(client, **params):
    response = client.get("/api/export", query_string=params, headers=DEF)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def walk(client, **params) -> list[list[int]]:
    """Every page's ids, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        body = export(client, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([row["id"] for row in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the cursor never ends"


def ndjson_lines(response) -> list[dict]:
    text = response.get_data(as_text=True)
    assert text.endswith("\n") or text == ""
    return [json.loads(line) for line in text.splitlines()]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------------------------------------
# JSON pages


def test_export_returns_the_real_rows_newest_first(reader, shared_sql):
    body = export(reader, limit=1000)
    assert set(body) == {"status", "data", "next_cursor"}
    assert body["status"] == "success"
    assert body["next_cursor"] is None
    assert body["data"] == expected_rows(shared_sql)
    assert len(body["data"]) == shared_sql.value("SELECT COUNT(*) FROM articles") >= 30
    ids = [row["id"] for row in body["data"]]
    assert all(a > b for a, b in zip(ids, ids[1:], strict=False))  # strictly descending


def test_export_page_is_the_newest_rows_with_a_cursor(reader, shared_sql):
    body = export(reader, limit=10)
    assert body["data"] == expected_rows(shared_sql)[:10]
    assert isinstance(body["next_cursor"], str) and body["next_cursor"]
    # Opaque: it does not expose a bare id to build on.
    assert body["next_cursor"] != str(body["data"][-1]["id"])


def test_a_json_page_is_byte_for_byte_the_encoder_of_its_rows(client, seeded, sql):
    """The database forms each object (articles.JSON_OBJECTS): the body is what json.dumps made
    of the rows before, on escapes, non-ASCII and long texts too."""
    summary = 'x" \\ \n \x01 é 😀 </script> ' * 2000
    for i in range(5):
        sql.run(
            "INSERT INTO articles (title, url, language, summary, updated_at) "
            "VALUES (%s, %s, 'en', %s, '2024-01-02 03:04:05')",
            (f"big {i} \t", f"https://x.org/big/{i}", summary),
        )
    response = client.get("/api/export?limit=4", headers=DEF)
    assert response.status_code == 200
    rows = expected_rows(sql)
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    cursor = b64(f"id:{rows[3]['id']}".encode())
    expected = {"status": "success", "data": rows[:4], "next_cursor": cursor}
    assert response.get_data() == json.dumps(expected, **compact).encode()


def test_default_limit_is_100(client, seeded):
    seeded.conn.cursor().executemany(
        "INSERT INTO articles (title, url, language, summary, updated_at) "
        "VALUES (%s, %s, 'en', 'Filler.', UTC_TIMESTAMP())",
        [(f"Filler {i}", f"https://en.wikipedia.org/wiki/Filler_{i}") for i in range(80)],
    )
    body = export(client)
    assert len(body["data"]) == 100
    assert body["next_cursor"] is not None
    assert body["data"] == expected_rows(seeded)[:100]


@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_limit_bounds_are_accepted(reader, limit):
    body = export(reader, limit=limit)
    assert len(body["data"]) == min(limit, 51)


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", "1e3"])
def test_bad_limit_is_400_naming_limit(reader, limit):
    response = reader.get("/api/export", query_string={"limit": limit}, headers=DEF)
    error = assert_error(response, 400, "validation_error")
    assert names_field(error, "limit"), error


def test_unknown_parameter_is_400_naming_it(reader):
    error = assert_error(reader.get("/api/export?limt=5", headers=DEF), 400, "validation_error")
    assert "limt" in error["message"]
    assert error["details"][0]["field"] == "limt"


# ---------------------------------------------------------------------------------------------
# Cursors


def test_cursor_pages_cover_every_row_once(reader, shared_sql):
    pages = walk(reader, limit=7)
    ids = [i for page in pages for i in page]
    assert len(ids) == len(set(ids))
    assert ids == [row["id"] for row in expected_rows(shared_sql)]
    assert all(len(page) == 7 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 7


def test_cursor_pages_never_repeat_or_skip_while_rows_are_inserted(client, seeded):
    at_start = [row["id"] for row in expected_rows(seeded)]
    seen, cursor, inserted = [], None, 0
    while True:
        body = export(client, limit=7, **({"cursor": cursor} if cursor else {}))
        seen += [row["id"] for row in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # Between page requests: new articles arrive and an old one is updated in place.
        for _ in range(3):
            inserted += 1
            seeded.run(
                "INSERT INTO articles (title, url, language, summary, updated_at) VALUES "
                "(%s, %s, 'en', 'New.', UTC_TIMESTAMP())",
                (f"New {inserted}", f"https://en.wikipedia.org/wiki/New_{inserted}"),
            )
        seeded.run(
            "UPDATE articles SET title = CONCAT(title, ' (edited)'), updated_at = UTC_TIMESTAMP() "
            "WHERE id = %s",
            (at_start[-1 - inserted % 7],),
        )
    assert inserted > 0
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert seen == at_start, "the pages are not exactly the rows that existed at the start"


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "aWQ6",  # "id:"
        b64(b"id:abc"),
        b64(b"id:0"),
        b64(b"id:-5"),
        b64(b"id:5 OR 1=1"),
        b64(b"pk:5"),
        "A" * 100,
        "",
    ],
)
def test_garbage_cursor_is_400_naming_cursor(reader, cursor):
    response = reader.get("/api/export", query_string={"cursor": cursor}, headers=DEF)
    error = assert_error(response, 400, "validation_error")
    assert names_field(error, "cursor"), error


# ---------------------------------------------------------------------------------------------
# since


@pytest.fixture
def dated(seeded):
    """Four articles around 2026-01-01T00:00:00Z; every other one long before."""
    seeded.run("UPDATE articles SET updated_at = '2020-01-01 00:00:00'")
    moments = {
        1: "2025-12-31 22:30:00",
        2: "2025-12-31 23:30:00",
        3: "2026-01-01 00:00:00",
        4: "2026-01-01 00:30:00",
    }
    for article_id, moment in moments.items():
        seeded.run("UPDATE articles SET updated_at = %s WHERE id = %s", (moment, article_id))
    return seeded


@pytest.mark.parametrize(
    ("since", "ids"),
    [
        ("2026-01-01T00:00:00Z", [4, 3]),  # inclusive bound
        ("2026-01-01T02:00:00+02:00", [4, 3]),  # the same instant
        ("2025-12-31T19:00:00-05:00", [4, 3]),  # the same instant
        ("2026-01-01T01:00:00+02:00", [4, 3, 2]),  # 23:00Z the day before
        ("2026-01-01T00:00:01Z", [4]),
        ("2026-01-01T00:30:00.500Z", []),
        ("2025-12-31T22:30:00Z", [4, 3, 2, 1]),
    ],
)
def test_since_filters_by_instant_whatever_the_offset(client, dated, since, ids):
    body = export(client, since=since)
    assert [row["id"] for row in body["data"]] == ids


def test_since_and_cursor_page_together(reader, shared_sql):
    since = "2025-01-01T00:00:00Z"
    pages = walk(reader, since=since, limit=4)
    ids = [i for page in pages for i in page]
    expected = [r["id"] for r in expected_rows(shared_sql, "updated_at >= '2025-01-01'")]
    assert 4 < len(expected) < 51  # the filter does something
    assert ids == expected


@pytest.mark.parametrize(
    "since",
    [
        "2026-01-01T00:00:00",  # naive: which zone?
        "2026-01-01",
        "yesterday",
        "1767225600",
        "2026-13-01T00:00:00Z",
        "2026-01-01T00:00:00 02:00",  # an unencoded '+' arrives as a space
    ],
)
def test_bad_since_is_400_naming_since(reader, since):
    response = reader.get("/api/export", query_string={"since": since}, headers=DEF)
    error = assert_error(response, 400, "validation_error")
    assert names_field(error, "since"), error


@pytest.mark.parametrize("route", ["/api/export", "/api/audit"])
@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_since_at_the_edge_of_the_calendar_is_not_a_500(reader, route, since):
    # Valid RFC 3339, but the UTC instant falls outside Python's datetime range: a client error,
    # never an internal one.
    response = reader.get(route, query_string={"since": since}, headers=DEF)
    error = assert_error(response, 400, "validation_error")
    assert names_field(error, "since"), error


@pytest.mark.parametrize("since", ["0500-01-01T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_since_before_any_row_returns_everything(reader, shared_sql, since):
    assert export(reader, since=since, limit=1000)["data"] == expected_rows(shared_sql)


# ---------------------------------------------------------------------------------------------
# NDJSON


def get_ndjson(client, **params):
    response = client.get("/api/export", query_string={"format": "ndjson", **params}, headers=DEF)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].split(";")[0] == "application/x-ndjson"
    return response


def test_ndjson_streams_every_row_one_object_per_line(reader, shared_sql):
    lines = ndjson_lines(get_ndjson(reader))
    assert lines == expected_rows(shared_sql)  # all rows: no default limit
    assert all(set(line) == FIELDS for line in lines)


def test_ndjson_limit_caps_the_stream(reader, shared_sql):
    assert ndjson_lines(get_ndjson(reader, limit=5)) == expected_rows(shared_sql)[:5]


def test_ndjson_with_since_and_cursor(reader, shared_sql):
    since = "2025-06-01T00:00:00Z"
    with_since = ndjson_lines(get_ndjson(reader, since=since))
    assert with_since == expected_rows(shared_sql, "updated_at >= '2025-06-01'")
    cursor = export(reader, limit=10)["next_cursor"]
    after = ndjson_lines(get_ndjson(reader, cursor=cursor))
    assert after == expected_rows(shared_sql)[10:]
    both = ndjson_lines(get_ndjson(reader, cursor=cursor, since=since, limit=3))
    last_seen = expected_rows(shared_sql)[9]["id"]
    where = "updated_at >= '2025-06-01' AND id < %s"
    assert both == expected_rows(shared_sql, where, (last_seen,))[:3]


@pytest.mark.parametrize("params", [{"format": "xml"}, {"format": "NDJSON"}, {"format": ""}])
def test_unknown_format_is_400_naming_format(reader, params):
    response = reader.get("/api/export", query_string=params, headers=DEF)
    error = assert_error(response, 400, "validation_error")
    assert names_field(error, "format"), error


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"cursor": "nope"}, "cursor"),
        ({"since": "today"}, "since"),
        ({"limt": "3"}, "limt"),
    ],
)
def test_ndjson_validates_its_parameters(reader, params, field):
    response = reader.get("/api/export", query_string={"format": "ndjson", **params}, headers=DEF)
    error = assert_error(response, 400, "validation_error")
    assert field in error["message"]


def test_ndjson_is_streamed_in_chunks_from_a_query_per_segment(reader, shared_sql, monkeypatch):
    monkeypatch.setattr(api_blueprint, "STREAM_PAGE", 5)
    monkeypatch.setattr(api_blueprint, "STREAM_SEGMENT", 12)
    queries = []
    real_batches = articles_repo.ndjson_batches

    def counting_batches(cur, **kwargs):
        queries.append(kwargs)
        return real_batches(cur, **kwargs)

    monkeypatch.setattr(articles_repo, "ndjson_batches", counting_batches)
    response = reader.get("/api/export?format=ndjson", headers=DEF)
    assert response.status_code == 200
    assert response.is_streamed
    chunks = iter(response.response)
    first = next(chunks)
    # The first rows are out after one query's first batch: nothing was read ahead.
    assert len(queries) == 1
    assert len(first.decode().splitlines()) == 5
    rest = list(chunks)
    response.close()
    lines = [json.loads(x) for x in b"".join([first, *rest]).decode().splitlines()]
    assert lines == expected_rows(shared_sql)  # every row, once, in order
    assert all(len(chunk.splitlines()) <= 5 for chunk in [first, *rest])
    # One query per 12 rows (the last one finds fewer, or none), each read 5 rows at a time.
    assert len(queries) == len(lines) // 12 + 1
    assert all(q["limit"] == 12 and q["batch"] == 5 for q in queries)


def test_a_client_that_leaves_mid_export_leaves_the_connection_usable(
    reader, shared_sql, monkeypatch
):
    monkeypatch.setattr(api_blueprint, "STREAM_PAGE", 5)
    monkeypatch.setattr(api_blueprint, "STREAM_SEGMENT", 40)
    with warnings.catch_warnings():
        # A query on a connection with a result left unread would warn (PyMySQL): an error here.
        warnings.simplefilter("error")
        response = reader.get("/api/export?format=ndjson", headers=DEF)
        first = next(iter(response.response))
        response.close()  # the client is gone with 35 rows of the query unread
        assert len(first.decode().splitlines()) == 5
        # The test client serves every request on this thread: the same connection answers.
        again = reader.get("/api/export?format=ndjson&limit=7", headers=DEF)
        assert ndjson_lines(again) == expected_rows(shared_sql)[:7]
        assert [row["id"] for row in export(reader, limit=3)["data"]] == [
            row["id"] for row in expected_rows(shared_sql)[:3]
        ]


def test_the_database_waits_for_a_slow_export_as_long_as_gunicorn_does(app_factory, seeded):
    # A stalled client holds the worker and so the query it streams: the server must not give
    # up on writing before gunicorn gives up on the worker.
    app = app_factory(GUNICORN_TIMEOUT=900)
    with app.app_context():
        row = app.extensions["db"].read(
            lambda cur: (cur.execute("SELECT @@SESSION.net_write_timeout AS t"), cur.fetchone())
        )[1]
    assert row["t"] == 900


def test_ndjson_limit_across_pages(reader, shared_sql, monkeypatch):
    monkeypatch.setattr(api_blueprint, "STREAM_PAGE", 5)
    monkeypatch.setattr(api_blueprint, "STREAM_SEGMENT", 7)
    lines = ndjson_lines(get_ndjson(reader, limit=12))
    assert lines == expected_rows(shared_sql)[:12]
