"""A database that was never migrated, half migrated or is missing: /ready and /api/* answer 503
in the JSON error shape saying which, the log names the fixing command, and no traceback."""

from __future__ import annotations

import logging

import pytest

from testkit import fresh_database, make_app, new_database_name

KEY = {"X-API-Key": "key_DEF456"}
PENDING = "The service's database is not ready: migrations are pending. Retry later."
MISSING = "The service's database does not exist yet. Retry later."


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def answers(database: str) -> dict[str, tuple[int, dict]]:
    app = make_app(database)
    client = app.test_client()
    try:
        out = {}
        for path in ("/ready", "/api/export", "/api/usage", "/api/audit"):
            response = client.get(path, headers=KEY)
            out[path] = (response.status_code, response.get_json())
        return out
    finally:
        app.extensions["audit"].close(timeout=0.5)
        app.extensions["db"].discard()


def assert_logged_once_without_traceback(records, words: str) -> None:
    assert not [r for r in records.records if r.exc_info], "no traceback"
    fix = [
        r
        for r in records.records
        if getattr(r, "event", None) == "db_unavailable"
        and r.name == "service.db"
        and "(requests)" in r.getMessage()
    ]
    assert len(fix) == 1, [r.getMessage() for r in fix]  # once, not per request
    assert words in fix[0].getMessage()
    assert fix[0].getMessage().endswith("run flask --app service migrate")


def test_never_migrated_database_is_503_migrations_pending(records):
    with fresh_database(migrate=False) as name:
        got = answers(name)
    for path, (status, body) in got.items():
        assert status == 503, path
        assert body == {"error": {"code": "not_ready", "message": PENDING}}, path
    assert_logged_once_without_traceback(records, "migrations are pending (schema at version 0")


def test_missing_database_is_503_database_missing(records):
    got = answers(new_database_name("missing"))
    for path, (status, body) in got.items():
        assert status == 503, path
        assert body == {"error": {"code": "not_ready", "message": MISSING}}, path
    assert_logged_once_without_traceback(records, "does not exist")


def test_a_missing_table_on_a_current_schema_is_still_a_500(app, sql, client):
    # Only pending migrations explain a missing table; on a current schema it is a bug to fix.
    sql.run("DROP VIEW masked_audit_logs")
    sql.run(
        "INSERT INTO users (id, username, email, permission_level) VALUES "
        "(9, 'u', 'u@example.com', 'admin')"
    )
    from testkit import key_hash

    sql.run(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit, calls_made,"
        " is_valid, created_at) VALUES (9, %s, 'key_ZZ', 'audit', 10, 0, 1, UTC_TIMESTAMP())",
        (key_hash("key_ZZZZZZ"),),
    )
    response = client.get("/api/audit", headers={"X-API-Key": "key_ZZZZZZ"})
    assert response.status_code == 500


def test_an_outage_with_a_full_buffer_logs_once_not_per_request(app_factory, records):
    from testkit import free_port

    app = app_factory(
        DB_PORT=free_port(), DB_CONNECT_TIMEOUT=0.5, AUDIT_BUFFER_SIZE=2, AUDIT_FLUSH_INTERVAL=1
    )
    client = app.test_client()
    for _ in range(12):
        assert client.get("/api/export", headers=KEY).status_code == 503
    writer = app.extensions["audit"]
    assert writer.overflowed >= 9 and writer.lost >= 9
    events = [getattr(r, "event", None) for r in records.records if r.levelno >= logging.WARNING]
    # Before: one overflow warning and one loss line per request, and one outage line each.
    assert events.count("audit_overflow") == 1
    assert events.count("audit_lost") == 1
    assert events.count("db_unavailable") <= 2  # requests, audit writer
    assert len(events) == events.count("audit_overflow") + 1 + events.count("db_unavailable")
