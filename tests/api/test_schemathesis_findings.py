"""What schemathesis found (tests/served/test_schemathesis.py), each kept as a regression test.

1. POST /api/import with a language code the pattern accepts but the column cannot hold
   (`ka-okg304dj-yp-cuu6-4rg7`, 24 characters; articles.language is VARCHAR(20)): the database
   refused the row and the client got a 500. Now a 400 naming the field, and nothing written.
"""

from __future__ import annotations

import uuid

import pytest

from assertions import ABC, assert_error
from testkit import shared_app


@pytest.fixture(scope="module")
def writable():
    with shared_app() as (app, sql):
        sql.run("UPDATE api_keys SET rate_limit = 1000000 WHERE id = 1")
        yield app, sql


def record(**changes) -> dict:
    return {
        "title": "Found by schemathesis",
        "url": f"https://en.wikipedia.org/wiki/{uuid.uuid4().hex}",
        "language": "en",
        "summary": "A record the generator built.",
        "updated_at": "2026-11-20T10:00:00Z",
        **changes,
    }


@pytest.mark.parametrize("language", ["ka-okg304dj-yp-cuu6-4rg7", "ty-kagnegz4-lnc0yzt5-sgtd"])
def test_a_language_code_longer_than_its_column_is_a_400_not_a_500(writable, language):
    app, sql = writable
    before = sql.value("SELECT COUNT(*) FROM articles")
    body = [record(), record(language=language)]
    response = app.test_client().post("/api/import", json=body, headers=ABC)
    error = assert_error(response, 400, "validation_error")
    assert error["details"][0]["record"] == 1 and error["details"][0]["field"] == "language"
    assert sql.value("SELECT COUNT(*) FROM articles") == before
