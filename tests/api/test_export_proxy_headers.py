"""What the export tells a buffering reverse proxy (nginx, scripts/proxy) about its responses.

A streamed NDJSON export says `X-Accel-Buffering: no`, so nginx passes it on as it is produced;
every other response leaves nginx's buffering on, so a slow client costs nginx, never a worker.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from testkit import Sql, make_app

READER = {"X-API-Key": "key_DEF456"}
LIMITED = {"X-API-Key": "key_ABC123"}


@pytest.fixture
def sample_client(sample_database):
    app = make_app(sample_database)
    yield app.test_client()
    app.extensions["audit"].close(timeout=2)
    app.extensions["db"].discard()


def test_a_streamed_ndjson_export_asks_the_proxy_not_to_buffer_it(sample_client):
    response = sample_client.get("/api/export?format=ndjson", headers=READER)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.get_data().count(b"\n") > 1  # the stream itself still arrives


@pytest.mark.parametrize("path", ["/api/export", "/api/export?limit=5", "/api/usage", "/health"])
def test_every_other_response_leaves_the_proxy_buffering_on(sample_client, path):
    response = sample_client.get(path, headers=READER)
    assert response.status_code == 200
    assert "X-Accel-Buffering" not in response.headers


def test_a_refused_ndjson_export_is_an_ordinary_buffered_error(sample_database, sample_client):
    today = datetime.now(UTC).date()
    sql = Sql(sample_database)
    sql.run(
        "UPDATE api_keys SET calls_made = rate_limit, last_reset = %s WHERE key_prefix = 'key_AB'",
        (today,),
    )
    sql.close()
    response = sample_client.get("/api/export?format=ndjson", headers=LIMITED)
    assert response.status_code == 429
    assert "X-Accel-Buffering" not in response.headers
