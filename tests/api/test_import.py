"""POST /api/import: a JSON array or NDJSON of articles, validated, all or nothing, upsert by URL.

Only key_ABC123 (user 1) has the `import` scope; its daily limit of 5 is raised here so that the
quota never decides a test.
"""

from __future__ import annotations

import json
import uuid

import pytest

from assertions import ABC, DEF, assert_error
from service import imports
from testkit import shared_app

NDJSON = "application/x-ndjson"


@pytest.fixture(scope="module")
def writable():
    with shared_app() as (app, sql):
        sql.run("UPDATE api_keys SET rate_limit = 1000000 WHERE id = 1")
        yield app, sql


@pytest.fixture
def writer(writable):
    return writable[0].test_client()


@pytest.fixture
def db(writable):
    return writable[1]


@pytest.fixture
def tag() -> str:
    """Unique per test, so that tests sharing the database never share URLs."""
    return uuid.uuid4().hex[:10]


def article(tag: str, n: int, **changes) -> dict:
    record = {
        "title": f"Test article {tag} {n}",
        "url": f"https://en.wikipedia.org/wiki/Test_{tag}_{n}",
        "language": "en",
        "summary": f"Summary of test article {n}.",
        "updated_at": "2026-03-01T12:00:00+02:00",
    }
    record.update(changes)
    return record


def articles(tag: str, count: int) -> list[dict]:
    return [article(tag, n) for n in range(count)]


def ndjson(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def count(sql) -> int:
    return sql.value("SELECT COUNT(*) FROM articles")


def imported_rows(sql, tag: str) -> list[dict]:
    return sql.all(
        "SELECT id, title, url, language, summary, updated_at FROM articles "
        "WHERE url LIKE %s ORDER BY id",
        (f"%Test\\_{tag}\\_%",),
    )


def post_json(client, body, headers=ABC):
    return client.post("/api/import", json=body, headers=headers)


def post_raw(client, data, content_type, headers=ABC):
    return client.post("/api/import", data=data, content_type=content_type, headers=headers)


# ---------------------------------------------------------------------------------------------
# Access and formats


def test_import_needs_the_import_scope(writer, db, tag):
    before = count(db)
    assert_error(post_json(writer, articles(tag, 2), headers=DEF), 403, "insufficient_scope")
    assert count(db) == before


def test_json_array_is_imported(writer, db, tag):
    before = count(db)
    response = post_json(writer, articles(tag, 3))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "success", "imported": 3}
    assert count(db) == before + 3
    rows = imported_rows(db, tag)
    assert [r["title"] for r in rows] == [f"Test article {tag} {n}" for n in range(3)]
    assert rows[0]["language"] == "en" and rows[0]["summary"] == "Summary of test article 0."
    # Stored in UTC: 12:00 at +02:00 is 10:00Z.
    assert rows[0]["updated_at"].isoformat() == "2026-03-01T10:00:00"
    exported = writer.get("/api/export?limit=3", headers=DEF).get_json()["data"]
    assert exported[0]["url"] == f"https://en.wikipedia.org/wiki/Test_{tag}_2"
    assert exported[0]["updated_at"] == "2026-03-01T10:00:00Z"


@pytest.mark.parametrize(
    "content_type", [NDJSON, "application/x-ndjson; charset=utf-8", "application/ndjson"]
)
def test_ndjson_is_imported(writer, db, tag, content_type):
    before = count(db)
    body = ndjson(articles(tag, 2)) + "\r\n\n" + json.dumps(article(tag, 2))  # no final newline
    response = post_raw(writer, body.encode(), content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "success", "imported": 3}
    assert count(db) == before + 3
    assert len(imported_rows(db, tag)) == 3


@pytest.mark.parametrize(
    ("body", "content_type"), [("[]", "application/json"), ("", NDJSON), ("\n\n", NDJSON)]
)
def test_empty_import_is_200_imported_0(writer, db, body, content_type):
    before = count(db)
    response = post_raw(writer, body, content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "success", "imported": 0}
    assert count(db) == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "text/csv", None],
)
def test_wrong_content_type_is_415(writer, db, tag, content_type):
    before = count(db)
    response = writer.post(
        "/api/import",
        data=json.dumps(articles(tag, 1)),
        headers={**ABC, **({"Content-Type": content_type} if content_type else {})},
    )
    assert_error(response, 415, "unsupported_media_type")
    assert count(db) == before


# ---------------------------------------------------------------------------------------------
# Validation: which record, which field


def without(record: dict, field: str) -> dict:
    return {k: v for k, v in record.items() if k != field}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "   "),
        ("title", 5),
        ("title", None),
        ("title", "x" * 301),
        ("url", "http://en.wikipedia.org/wiki/Plain_http"),
        ("url", "javascript:alert(1)"),
        ("url", "https://"),
        ("url", "not a url"),
        ("url", "ftp://en.wikipedia.org/wiki/X"),
        ("url", ["https://en.wikipedia.org/wiki/X"]),
        ("language", "English"),
        ("language", ""),
        ("language", 7),
        ("summary", ""),
        ("summary", None),
        ("summary", {"text": "x"}),
        ("updated_at", "2026-01-01T00:00:00"),  # no time zone
        ("updated_at", "yesterday"),
        ("updated_at", 12),
        ("updated_at", "2026-02-30T00:00:00Z"),
        ("updated_at", "9999-12-31T23:59:59-01:00"),  # valid RFC 3339, past year 9999 in UTC
    ],
)
def test_invalid_field_names_record_and_field_and_imports_nothing(writer, db, tag, field, value):
    before = count(db)
    records = [article(tag, 0), article(tag, 1, **{field: value}), article(tag, 2)]
    error = assert_error(post_json(writer, records), 400, "validation_error")
    assert error["details"][0]["record"] == 1
    assert error["details"][0]["field"] == field
    assert "record 1" in error["message"] and f"'{field}'" in error["message"]
    assert count(db) == before
    assert imported_rows(db, tag) == []


@pytest.mark.parametrize("field", ["title", "url", "language", "summary", "updated_at"])
def test_missing_field_names_it(writer, db, tag, field):
    before = count(db)
    records = [article(tag, 0), without(article(tag, 1), field)]
    error = assert_error(post_json(writer, records), 400, "validation_error")
    first = error["details"][0]
    assert (first["record"], first["field"]) == (1, field)
    assert count(db) == before


def test_unknown_field_is_400_naming_it(writer, db, tag):
    before = count(db)
    records = [article(tag, 0), article(tag, 1, author="Someone")]
    error = assert_error(post_json(writer, records), 400, "validation_error")
    assert error["details"][0]["record"] == 1
    assert error["details"][0]["field"] == "author"
    assert "author" in error["message"]
    assert count(db) == before


@pytest.mark.parametrize("bad", ["a string", 5, None, [1, 2], True])
def test_record_that_is_not_an_object_is_400(writer, db, tag, bad):
    before = count(db)
    error = assert_error(post_json(writer, [article(tag, 0), bad]), 400, "validation_error")
    assert error["details"][0]["record"] == 1
    assert count(db) == before


@pytest.mark.parametrize("body", ['{"title": "x"}', '"text"', "5", "null"])
def test_body_that_is_not_an_array_is_400(writer, db, body):
    before = count(db)
    assert_error(post_raw(writer, body, "application/json"), 400, "validation_error")
    assert count(db) == before


def test_ndjson_error_names_the_record(writer, db, tag):
    before = count(db)
    body = ndjson([article(tag, 0)]) + "\n" + ndjson([article(tag, 1, url="http://x.org/a")])
    error = assert_error(post_raw(writer, body, NDJSON), 400, "validation_error")
    assert error["details"][0]["record"] == 1 and error["details"][0]["field"] == "url"
    assert count(db) == before


# ---------------------------------------------------------------------------------------------
# All or nothing


@pytest.mark.parametrize("batch", [imports.BATCH, 10])
def test_one_bad_record_among_100_imports_nothing(writer, db, tag, monkeypatch, batch):
    # With a batch of 10, five batches are already written when record 57 is read: the whole
    # transaction must still roll back.
    monkeypatch.setattr(imports, "BATCH", batch)
    before = count(db)
    records = articles(tag, 101)
    records[57]["url"] = "http://en.wikipedia.org/wiki/Not_https"
    records[80]["updated_at"] = "2026-01-01T00:00:00"
    error = assert_error(post_json(writer, records), 400, "validation_error")
    assert [(d["record"], d["field"]) for d in error["details"]] == [
        (57, "url"),
        (80, "updated_at"),
    ]
    assert "record 57" in error["message"]
    assert count(db) == before
    assert imported_rows(db, tag) == []


def test_one_bad_ndjson_record_among_100_imports_nothing(writer, db, tag, monkeypatch):
    monkeypatch.setattr(imports, "BATCH", 10)
    before = count(db)
    records = articles(tag, 101)
    records[57]["language"] = "not a language"
    error = assert_error(post_raw(writer, ndjson(records), NDJSON), 400, "validation_error")
    assert error["details"][0]["record"] == 57
    assert count(db) == before


def test_rolled_back_import_leaves_updated_rows_as_they_were(writer, db, tag, monkeypatch):
    monkeypatch.setattr(imports, "BATCH", 2)
    ada = db.one("SELECT * FROM articles WHERE url = 'https://en.wikipedia.org/wiki/Ada_Lovelace'")
    records = [
        article(tag, 0, url=ada["url"], title="Overwritten"),
        *articles(tag, 4)[1:],
        article(tag, 9, summary=""),
    ]
    assert_error(post_json(writer, records), 400, "validation_error")
    assert db.one("SELECT * FROM articles WHERE id = %s", (ada["id"],)) == ada


# ---------------------------------------------------------------------------------------------
# Upsert by URL


def test_existing_url_is_updated_in_place(writer, db, tag):
    existing = db.one("SELECT id, url FROM articles WHERE url LIKE '%%/Marie_Curie'")
    before = count(db)
    record = article(tag, 0, url=existing["url"], title=f"Marie Curie {tag}", language="fr")
    response = post_json(writer, [record])
    assert response.status_code == 200 and response.get_json()["imported"] == 1
    assert count(db) == before
    row = db.one("SELECT id, title, language FROM articles WHERE url = %s", (existing["url"],))
    assert row == {"id": existing["id"], "title": f"Marie Curie {tag}", "language": "fr"}


def test_same_url_twice_in_one_import_keeps_the_last(writer, db, tag):
    before = count(db)
    records = [article(tag, 0, title="first"), article(tag, 0, title="second")]
    assert post_json(writer, records).status_code == 200
    assert count(db) == before + 1
    assert [r["title"] for r in imported_rows(db, tag)] == ["second"]


def test_urls_are_compared_exactly(writer, db, tag):
    # Wikipedia titles are case-sensitive: two URLs differing in case are two articles.
    records = [
        article(tag, 0, url=f"https://en.wikipedia.org/wiki/Test_{tag}_0"),
        article(tag, 1, url=f"https://en.wikipedia.org/wiki/TEST_{tag}_0"),
    ]
    before = count(db)
    assert post_json(writer, records).status_code == 200
    assert count(db) == before + 2


# ---------------------------------------------------------------------------------------------
# Hostile bodies


def test_sql_looking_strings_are_stored_literally(writer, db, tag):
    before = count(db)
    title = "Robert'); DROP TABLE articles;--"
    summary = "1' OR '1'='1'; DELETE FROM api_keys; -- \\' \" `"
    url = f"https://en.wikipedia.org/wiki/Bobby_{tag}');DROP_TABLE_articles;--"
    response = post_json(writer, [article(tag, 0, title=title, summary=summary, url=url)])
    assert response.status_code == 200, response.get_data(as_text=True)
    row = db.one("SELECT title, summary FROM articles WHERE url = %s", (url,))
    assert row == {"title": title, "summary": summary}
    assert count(db) == before + 1
    assert db.value("SELECT COUNT(*) FROM api_keys") == 2


@pytest.mark.parametrize(
    "body",
    [
        b'[{"title": "x",',
        b"[1, 2,]",
        b"{'single': 'quotes'}",
        b"\xff\xfe not utf-8",
        b"",
    ],
)
def test_malformed_json_is_400_and_changes_nothing(writer, db, body):
    before = count(db)
    response = post_raw(writer, body, "application/json")
    error = assert_error(response, 400, "malformed_json")
    assert "single" not in error["message"]  # the body is not echoed
    assert count(db) == before


def test_malformed_ndjson_line_after_valid_ones_imports_nothing(writer, db, tag, monkeypatch):
    monkeypatch.setattr(imports, "BATCH", 2)  # the valid lines are written before the bad one
    before = count(db)
    body = ndjson(articles(tag, 5)) + '{"title": "broken", \n' + ndjson([article(tag, 6)])
    error = assert_error(post_raw(writer, body, NDJSON), 400, "malformed_json")
    assert "record 5" in error["message"] and "line 6" in error["message"]
    assert count(db) == before
    assert imported_rows(db, tag) == []


def test_body_over_the_size_cap_is_413_and_changes_nothing(app_factory, seeded, tag):
    seeded.run("UPDATE api_keys SET rate_limit = 1000 WHERE id = 1")
    client = app_factory(MAX_BODY_BYTES=2048).test_client()
    before = count(seeded)
    big = articles(tag, 25)
    assert len(json.dumps(big)) > 4096
    assert_error(post_json(client, big), 413, "payload_too_large")
    assert_error(post_raw(client, ndjson(big), NDJSON), 413, "payload_too_large")
    assert count(seeded) == before
    # Under the cap, the same app imports.
    small = articles(tag, 3)
    assert len(json.dumps(small)) < 2048
    assert post_json(client, small).status_code == 200
    assert count(seeded) == before + 3
