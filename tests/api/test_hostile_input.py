"""Input that used to crash the service (500, and charged to the quota) or was read loosely: each
is now a 400 that names the field, the parameter or the framing, and nothing is written."""

from __future__ import annotations

import json

import pytest
from freezegun import freeze_time

from service.schemas import encode_cursor

ABC = {"X-API-Key": "key_ABC123"}  # export, import; limit 5
DEF = {"X-API-Key": "key_DEF456"}  # export, audit
NDJSON = "application/x-ndjson"
NEW_KEY = "wk_" + "Ab1" * 10 + "Zz"  # shaped like one of our keys: 35 characters


@pytest.fixture
def importer(client, seeded):
    seeded.run("UPDATE api_keys SET rate_limit = 1000000 WHERE id = 1")
    return client


def article(**changes) -> dict:
    record = {
        "title": "Hostile",
        "url": "https://en.wikipedia.org/wiki/Hostile",
        "language": "en",
        "summary": "A summary.",
        "updated_at": "2026-03-01T12:00:00Z",
    }
    record.update(changes)
    return record


def articles_count(sql) -> int:
    return sql.value("SELECT COUNT(*) FROM articles")


def error_of(response, status=400) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]


def post(client, body: str | bytes, content_type: str = "application/json"):
    return client.post("/api/import", data=body, content_type=content_type, headers=ABC)


@pytest.mark.parametrize("content_type", ["application/json", NDJSON])
def test_100000_nested_brackets_are_a_400_not_a_crash(importer, seeded, content_type):
    before = articles_count(seeded)
    error = error_of(post(importer, "[" * 100_000, content_type))
    assert error["code"] == "malformed_json"
    assert "nested too deeply" in error["message"]
    assert articles_count(seeded) == before


def test_a_lone_surrogate_in_a_title_is_a_400_naming_it(importer, seeded):
    before = articles_count(seeded)
    body = (
        '[{"title": "\\ud800", "url": "https://en.wikipedia.org/wiki/S", "language": "en", '
        '"summary": "s", "updated_at": "2026-03-01T12:00:00Z"}]'
    )
    error = error_of(post(importer, body))
    assert error["code"] == "validation_error"
    assert "'title'" in error["message"] and "surrogate" in error["message"]
    assert articles_count(seeded) == before


def test_a_lone_surrogate_in_an_ndjson_summary_is_a_400_naming_it(importer, seeded):
    before = articles_count(seeded)
    good = json.dumps(article(url="https://en.wikipedia.org/wiki/Good"))
    bad = json.dumps(article()).replace('"A summary."', '"A \\udfff summary"')
    error = error_of(post(importer, good + "\n" + bad + "\n", NDJSON))
    assert error["details"][0] == {
        "record": 1,
        "field": "summary",
        "message": "Must be valid Unicode text (no lone surrogates).",
    }
    assert articles_count(seeded) == before


def test_a_language_longer_than_its_column_is_a_400_naming_it(importer, seeded):
    before = articles_count(seeded)
    language = "abc-abcdefgh-abcdefgh"  # matches the pattern; 21 characters, the column holds 20
    error = error_of(importer.post("/api/import", json=[article(language=language)], headers=ABC))
    assert "'language'" in error["message"]
    assert articles_count(seeded) == before


def test_a_summary_over_the_columns_bytes_is_a_400_naming_it(importer, seeded):
    before = articles_count(seeded)
    summary = "\U0001f600" * 20_000  # 20,000 characters, 80,000 bytes: TEXT holds 65,535
    error = error_of(importer.post("/api/import", json=[article(summary=summary)], headers=ABC))
    assert "'summary'" in error["message"] and "bytes" in error["message"]
    assert articles_count(seeded) == before


def test_the_largest_summary_the_column_holds_is_imported(importer, seeded):
    summary = "\U0001f600" * 16_383 + "abc"  # 65,535 bytes exactly
    response = importer.post("/api/import", json=[article(summary=summary)], headers=ABC)
    assert response.status_code == 200, response.get_data(as_text=True)
    stored = seeded.value("SELECT summary FROM articles WHERE url = %s", (article()["url"],))
    assert stored == summary


def test_a_key_used_as_a_record_field_name_is_never_echoed(importer, seeded):
    record = {**article(), NEW_KEY: 1, "key_ABC123": 2}
    response = importer.post("/api/import", json=[record], headers=ABC)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert NEW_KEY not in text and NEW_KEY[:7] not in text
    assert "key_ABC123" not in text and "key_ABC" not in text
    assert "wk_Ab1..." in text and "key_AB..." in text


def test_a_key_used_as_a_parameter_name_is_never_echoed(client, seeded):
    response = client.get(f"/api/export?{NEW_KEY}=1", headers=DEF)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert NEW_KEY[:7] not in text
    assert "invalid parameter 'wk_Ab1...'" in text


# ---------------------------------------------------------------------------------------------
# Strict parsing of query strings (issue 13, item 10)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=1&limit=5000", "limit"),
        ("limit=5000&limit=1", "limit"),
        ("format=json&format=ndjson", "format"),
        ("since=2026-01-01T00:00:00Z&since=2026-01-02T00:00:00Z", "since"),
        ("cursor=aWQ6NQ&cursor=aWQ6NQ", "cursor"),
    ],
)
def test_a_parameter_given_twice_is_a_400_naming_it(client, seeded, query, parameter):
    with freeze_time("2026-11-26T10:00:00Z"):
        error = error_of(client.get(f"/api/export?{query}", headers=DEF))
    assert f"'{parameter}'" in error["message"] and "more than once" in error["message"]


def test_audit_parameters_given_twice_are_refused_too(client, seeded):
    error = error_of(client.get("/api/audit?status=200&status=404", headers=DEF))
    assert "'status'" in error["message"]


@pytest.mark.parametrize(
    "since",
    [
        "2026-W48-3T00:00:00Z",  # ISO week date
        "2026-330T00:00:00Z",  # ordinal date
        "20261126T000000Z",  # basic format
        "2026-11-26T000000Z",
        "2026-11-26T00:00Z",  # no seconds
        "2026-11-26T00:00:00+0100",  # offset without a colon
        "2026-11-26",
        "２０２６-11-26T00:00:00Z",  # fullwidth digits
        "2026-11-26T00:00:00Z ",
    ],
)
def test_since_is_rfc3339_exactly(client, seeded, since):
    error = error_of(client.get("/api/export", query_string={"since": since}, headers=DEF))
    assert "'since'" in error["message"]


@pytest.mark.parametrize(
    "since", ["2026-11-26T00:00:00Z", "2026-11-26T00:00:00.123456Z", "2026-11-26T01:00:00+01:00"]
)
def test_rfc3339_instants_are_accepted(client, seeded, since):
    response = client.get("/api/export", query_string={"since": since, "limit": "1"}, headers=DEF)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("suffix", ["x", "=", "==", "AA", "%20"])
def test_a_cursor_with_trailing_characters_is_refused(client, seeded, suffix):
    cursor = encode_cursor(5)
    error = error_of(client.get(f"/api/export?cursor={cursor}{suffix}", headers=DEF))
    assert "'cursor'" in error["message"]


def test_a_cursor_that_round_trips_is_accepted(client, seeded):
    response = client.get(f"/api/export?limit=1&cursor={encode_cursor(5)}", headers=DEF)
    assert response.status_code == 200
    assert [row["id"] for row in response.get_json()["data"]] == [4]


@pytest.mark.parametrize("value", ["١٠", "５", "+5", " 5", "5_0", "0x10", "1e2", "٣"])
def test_limit_takes_ascii_digits_only(client, seeded, value):
    error = error_of(client.get("/api/export", query_string={"limit": value}, headers=DEF))
    assert "'limit'" in error["message"]


def test_status_takes_ascii_digits_only(client, seeded):
    error = error_of(client.get("/api/audit", query_string={"status": "２００"}, headers=DEF))
    assert "'status'" in error["message"]
