"""TICKET-002, part 1: every /api/* request leaves one truthful audit row, whatever its outcome."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from freezegun import freeze_time

from service.errors import ErrorCode
from testkit import flush_audit, free_port, wait_until

ABC = {"X-API-Key": "key_ABC123"}
DEF = {"X-API-Key": "key_DEF456"}


def rows(sql) -> list[dict]:
    return sql.all(
        "SELECT key_id, key_prefix, method, endpoint, response_code, response_time_ms, "
        "`timestamp`, request_id, error_code, error_message FROM audit_logs ORDER BY id"
    )


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "key_id", "prefix", "code", "endpoint"),
    [
        (
            "GET",
            "/api/export?limit=2&since=2020-01-01T00:00:00Z",
            {"headers": DEF},
            200,
            2,
            "key_DE",
            None,
            "/api/export",
        ),
        (
            "GET",
            "/api/export?limit=0",
            {"headers": DEF},
            400,
            2,
            "key_DE",
            "validation_error",
            "/api/export",
        ),
        ("GET", "/api/export", {}, 401, None, None, "missing_key", "/api/export"),
        (
            "GET",
            "/api/export",
            {"headers": {"X-API-Key": "key_ABC12"}},
            401,
            None,
            None,
            "invalid_key",
            "/api/export",
        ),
        (
            "GET",
            "/api/audit",
            {"headers": ABC},
            403,
            1,
            "key_AB",
            "insufficient_scope",
            "/api/audit",
        ),
        ("GET", "/api/users?id=1", {"headers": DEF}, 404, None, None, "not_found", "/api/users"),
        (
            "DELETE",
            "/api/export",
            {"headers": DEF},
            405,
            None,
            None,
            "method_not_allowed",
            "/api/export",
        ),
        (
            "POST",
            "/api/import",
            {"headers": ABC, "data": "x", "content_type": "text/plain"},
            415,
            1,
            "key_AB",
            "unsupported_media_type",
            "/api/import",
        ),
        (
            "POST",
            "/api/import",
            {"headers": ABC, "data": "[{", "content_type": "application/json"},
            400,
            1,
            "key_AB",
            "malformed_json",
            "/api/import",
        ),
        ("GET", "/api/usage", {"headers": ABC}, 200, 1, "key_AB", None, "/api/usage"),
    ],
)
def test_one_row_per_request_with_its_true_outcome(
    app, client, seeded, method, path, kwargs, status, key_id, prefix, code, endpoint
):
    with freeze_time("2026-11-26T10:11:12.345Z"):
        response = client.open(path, method=method, **kwargs)
    assert response.status_code == status
    flush_audit(app)
    [row] = rows(seeded)[3:]  # the sample data holds three old rows
    assert row["response_code"] == status
    assert row["method"] == method
    assert row["endpoint"] == endpoint, "the path is stored without its query string"
    assert row["key_id"] == key_id and row["key_prefix"] == prefix
    assert row["error_code"] == code
    assert code is None or code in {c.value for c in ErrorCode}
    assert row["timestamp"] == datetime(2026, 11, 26, 10, 11, 12, 345000), "UTC"
    assert row["request_id"] == response.headers["X-Request-ID"]
    assert row["response_time_ms"] >= 0
    assert row["error_message"] is None, "no free text is ever written"


def test_quota_refusals_are_audited_as_429(app, client, seeded):
    statuses = [client.get("/api/export?limit=1", headers=ABC).status_code for _ in range(7)]
    flush_audit(app)
    assert [r["response_code"] for r in rows(seeded)[3:]] == statuses == [200] * 5 + [429] * 2
    assert [r["error_code"] for r in rows(seeded)[-2:]] == ["quota_exceeded"] * 2


def test_413_is_audited(app_factory, seeded):
    app = app_factory(MAX_BODY_BYTES=2048)
    response = app.test_client().post(
        "/api/import", data=b"[" + b" " * 4096 + b"]", headers=ABC, content_type="application/json"
    )
    assert response.status_code == 413
    flush_audit(app)
    assert rows(seeded)[-1]["response_code"] == 413
    assert rows(seeded)[-1]["error_code"] == "payload_too_large"


def test_a_500_is_audited_and_says_nothing_of_its_cause(app, client, seeded, log_records):
    seeded.run("RENAME TABLE articles TO articles_gone")
    try:
        response = client.get("/api/export", headers=DEF)
    finally:
        seeded.run("RENAME TABLE articles_gone TO articles")
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {"code": "internal_error", "message": "Internal error."}
    }
    flush_audit(app)
    assert rows(seeded)[-1]["response_code"] == 500
    assert rows(seeded)[-1]["error_code"] == "internal_error"
    assert any(r.levelno == logging.ERROR for r in log_records.records)


def test_a_503_is_audited_once_the_database_is_back(app_factory, seeded, db_relay):
    app = app_factory(DB_PORT=db_relay.port, DB_CONNECT_TIMEOUT=1)
    db_relay.cut()
    assert app.test_client().get("/api/export", headers=DEF).status_code == 503
    assert not app.extensions["audit"].flush(), "the row waits while the database is away"
    db_relay.restore()
    flush_audit(app)
    assert rows(seeded)[-1]["response_code"] == 503
    assert rows(seeded)[-1]["error_code"] == "db_unavailable"


def test_a_value_that_matches_no_key_leaves_nothing_derived_from_it(app, client, seeded):
    presented = "sk_live_SECRETPASSWORD123"
    client.get("/api/export", headers={"X-API-Key": presented})
    client.get("/api/export", headers={"Authorization": f"Bearer {presented}"})
    flush_audit(app)
    dump = seeded.dump()
    for size in (6, 7, len(presented)):
        assert presented[:size] not in dump
    assert [r["key_prefix"] for r in rows(seeded)[-2:]] == [None, None]


def test_paths_that_match_no_route_are_recorded_only_when_they_look_like_a_route(
    app, client, seeded
):
    client.get("/api/password-reset?email=a@example.com")
    client.get("/api/export/key_ABC123")
    client.get("/api/Key_Secret_Value_42")
    flush_audit(app)
    assert [r["endpoint"] for r in rows(seeded)[-3:]] == [
        "/api/password-reset",
        "(unmatched)",
        "(unmatched)",
    ]


def test_rows_are_written_within_a_second_without_an_explicit_flush(client, seeded):
    client.get("/api/export?limit=1", headers=DEF)
    wait_until(lambda: len(rows(seeded)) == 4, timeout=1.5, interval=0.02)


def test_a_full_buffer_writes_in_the_request_and_counts_the_overflow(
    app_factory, seeded, log_records
):
    app = app_factory(AUDIT_BUFFER_SIZE=2, AUDIT_FLUSH_INTERVAL=1)
    writer = app.extensions["audit"]
    client = app.test_client()
    for _ in range(6):
        client.get("/api/export?limit=1", headers=DEF)
    # Whatever the timing, nothing is dropped: overflowing rows were written synchronously.
    flush_audit(app)
    assert len(rows(seeded)) == 3 + 6
    assert writer.lost == 0
    if writer.overflowed:
        assert any(getattr(r, "event", None) == "audit_overflow" for r in log_records.records)


def test_overflow_is_counted_and_logged_deterministically(app_factory, seeded, log_records):
    app = app_factory(AUDIT_BUFFER_SIZE=1, AUDIT_FLUSH_INTERVAL=1)
    writer = app.extensions["audit"]
    writer._ensure_thread()
    writer._stop.set()  # park the background thread: only overflow can write now
    writer._thread.join()
    row = {
        "key_id": None,
        "key_prefix": None,
        "method": "GET",
        "endpoint": "/api/export",
        "response_code": 401,
        "response_time_ms": 1,
        "timestamp": datetime(2026, 1, 1),
        "request_id": "r",
        "error_code": "missing_key",
    }
    writer._queue.append(dict(row))
    writer.record(dict(row))  # the queue is full: written in the caller
    assert writer.overflowed == 1
    assert writer.waiting == 0
    assert len(rows(seeded)) == 3 + 2
    assert any(getattr(r, "event", None) == "audit_overflow" for r in log_records.records)


def test_buffer_stays_bounded_while_the_database_is_away(app_factory, seeded, log_records):
    app = app_factory(
        DB_PORT=free_port(), DB_CONNECT_TIMEOUT=0.5, AUDIT_BUFFER_SIZE=5, AUDIT_FLUSH_INTERVAL=1
    )
    writer = app.extensions["audit"]
    client = app.test_client()
    for _ in range(12):
        assert client.get("/api/export", headers=DEF).status_code == 503
    assert writer.waiting <= 5
    assert writer.lost >= 7
    assert any(getattr(r, "event", None) == "audit_lost" for r in log_records.records)
