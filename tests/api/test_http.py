"""HTTP hygiene: one JSON error shape, ProxyFix with a set number of hops, liveness/readiness,
one structured log line per request that never carries a key, and the legacy routes gone.
"""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from datetime import UTC, datetime

import pytest

from assertions import ABC, DEF, assert_error
from service.logging_setup import JsonFormatter
from service.repositories import articles as articles_repo
from testkit import flush_audit, free_port, fresh_database, make_app

LEGACY_ROUTES = ["/api/users", "/api/services", "/api/status", "/api/password-reset"]
FORBIDDEN_WORDS = [
    "password",
    "email",
    "@example.com",
    "api_keys",
    "audit_logs",
    "users",
    "schema_migrations",
    "processlist",
    "threads",
]


@pytest.fixture
def build(shared):
    """Apps with extra settings on the module's shared database, closed at the end."""
    apps = []

    def factory(**overrides):
        app = make_app(shared[1].database, **overrides)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["audit"].close(timeout=2)
        app.extensions["db"].discard()


def request_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service.request"]


def record_text(record: logging.LogRecord) -> str:
    """Everything a log record carries: message, every attribute, and its JSON line."""
    return "\n".join([record.getMessage(), repr(vars(record)), JsonFormatter().format(record)])


# ---------------------------------------------------------------------------------------------
# One error shape


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/api/", "/api", "/health/x"])
def test_unknown_route_is_json_404(reader, path):
    for headers in ({}, DEF):
        error = assert_error(reader.get(path, headers=headers), 404, "not_found")
        assert "<" not in error["message"]  # no Werkzeug HTML


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/export", "GET"),
        ("DELETE", "/api/export", "GET"),
        ("GET", "/api/import", "POST"),
        ("PUT", "/health", "GET"),
        ("POST", "/ready", "GET"),
    ],
)
def test_wrong_method_is_json_405_with_allow(reader, method, path, allowed):
    response = reader.open(path, method=method, headers=DEF)
    assert_error(response, 405, "method_not_allowed")
    assert allowed in {m.strip() for m in response.headers["Allow"].split(",")}


def test_unexpected_error_is_json_500_without_internals(reader, monkeypatch, log_records):
    def broken(cur, **kwargs):
        raise RuntimeError("boom: SELECT * FROM api_keys WHERE password = 'hunter2'")

    monkeypatch.setattr(articles_repo, "json_page", broken)
    response = reader.get("/api/export", headers=DEF)
    error = assert_error(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    for leak in ("boom", "SELECT", "api_keys", "hunter2", "Traceback", "RuntimeError"):
        assert leak not in text
    assert error["message"] == "Internal error."
    # The operator gets the traceback in the log instead.
    assert any(r.name == "service.errors" and r.exc_info for r in log_records.records)


# ---------------------------------------------------------------------------------------------
# ProxyFix


def remote_addr_logged(app, caplog, **kwargs) -> str:
    caplog.clear()
    response = app.test_client().get("/health", **kwargs)
    assert response.status_code == 200
    (record,) = request_records(caplog)
    return record.remote_addr


def test_forwarded_for_is_used_through_one_trusted_proxy(build, log_records):
    app = build(TRUSTED_PROXIES=1)
    proxy = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    assert remote_addr_logged(app, log_records, headers=forwarded, **proxy) == "203.0.113.9"
    # Only the nearest hop is trusted: a client-supplied earlier entry is ignored.
    chain = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    assert remote_addr_logged(app, log_records, headers=chain, **proxy) == "203.0.113.9"


def test_forwarded_for_is_ignored_without_trusted_proxies(build, log_records):
    app = build(TRUSTED_PROXIES=0)
    proxy = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    assert remote_addr_logged(app, log_records, headers=forwarded, **proxy) == "10.0.0.2"


# ---------------------------------------------------------------------------------------------
# /health and /ready


@pytest.fixture
def dead_db_app():
    """An app whose database port has nothing listening."""
    app = make_app("unreachable_db", DB_PORT=free_port(), DB_RETRY_AFTER=7)
    yield app
    app.extensions["audit"].close(timeout=0.1)
    app.extensions["db"].discard()


def test_health_answers_ok_without_the_database(dead_db_app):
    response = dead_db_app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "OK"
    assert response.mimetype == "text/plain"


def test_ready_is_503_when_the_database_does_not_answer(dead_db_app):
    response = dead_db_app.test_client().get("/ready")
    assert_error(response, 503, "db_unavailable")
    assert response.headers["Retry-After"] == "7"
    text = response.get_data(as_text=True)
    assert "2003" not in text and "Can't connect" not in text and "unreachable_db" not in text


def test_api_fails_closed_with_503_when_the_database_does_not_answer(dead_db_app):
    response = dead_db_app.test_client().get("/api/export", headers=DEF)
    assert_error(response, 503, "db_unavailable")
    assert response.headers["Retry-After"] == "7"


def test_ready_is_200_when_migrations_are_current(reader):
    response = reader.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_ready_is_503_when_migrations_are_pending(client, sql):
    assert client.get("/ready").status_code == 200
    last = sql.one("SELECT * FROM schema_migrations ORDER BY version DESC LIMIT 1")
    sql.run("DELETE FROM schema_migrations WHERE version = %s", (last["version"],))
    response = client.get("/ready")
    error = assert_error(response, 503, "not_ready")
    assert "Retry-After" in response.headers
    assert "schema_migrations" not in error["message"]
    sql.run(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
        "VALUES (%(version)s, %(name)s, %(checksum)s, %(applied_at)s)",
        last,
    )
    assert client.get("/ready").status_code == 200


def test_ready_is_503_on_a_database_never_migrated():
    with fresh_database(migrate=False) as name:
        app = make_app(name)
        try:
            response = app.test_client().get("/ready")
        finally:
            app.extensions["db"].discard()
    assert_error(response, 503, "not_ready")
    text = response.get_data(as_text=True)
    assert "schema_migrations" not in text and "1146" not in text


# ---------------------------------------------------------------------------------------------
# The request log


def test_one_structured_log_line_per_request(reader, log_records):
    log_records.clear()
    responses = [
        reader.get("/api/export?limit=2&since=2020-01-01T00:00:00Z", headers=DEF),
        reader.get("/health"),
        reader.get("/api/nope", headers=DEF),
        reader.get("/api/audit", headers=ABC),
    ]
    records = request_records(log_records)
    assert len(records) == len(responses)
    expected = [
        ("GET", "/api/export", 200, "key_DE"),
        ("GET", "/health", 200, None),
        ("GET", "/api/nope", 404, None),
        ("GET", "/api/audit", 403, "key_AB"),
    ]
    for record, response, (method, path, status, prefix) in zip(
        records, responses, expected, strict=True
    ):
        assert (record.method, record.path, record.status, record.key_prefix) == (
            method,
            path,
            status,
            prefix,
        )
        assert record.request_id == response.headers["X-Request-ID"]
        assert isinstance(record.latency_ms, int) and record.latency_ms >= 0
        line = json.loads(JsonFormatter().format(record))
        assert {"request_id", "method", "path", "status", "latency_ms", "key_prefix"} <= set(line)


def test_the_json_line_keeps_the_fields_in_order_with_a_millisecond_utc_time(reader, log_records):
    log_records.clear()
    reader.get("/api/usage", headers=DEF)
    (record,) = request_records(log_records)
    line = json.loads(JsonFormatter().format(record))
    assert list(line)[:12] == [
        "ts",
        "level",
        "logger",
        "message",
        "event",
        "request_id",
        "method",
        "path",
        "status",
        "latency_ms",
        "key_prefix",
        "error_code",
    ]
    created = datetime.fromtimestamp(record.created, UTC)
    assert (
        line["ts"] == created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z"
    )


def test_no_header_is_sent_twice(reader, shared_sql):
    """Quota, request-id and error headers are appended, not replaced: each must be new."""
    responses = [
        reader.get("/api/usage", headers=DEF),
        reader.get("/api/export?limit=1", headers=DEF),
        reader.get("/api/export?limit=1", headers={"X-API-Key": "key_NOPE99"}),
        reader.get("/api/export?limit=1"),
        reader.post("/api/export", headers=DEF),
        reader.get("/health"),
    ]
    for response in responses:
        names = [name.lower() for name, _ in response.headers]
        assert len(names) == len(set(names)), (response.status_code, names)
    assert [r.status_code for r in responses] == [200, 200, 401, 401, 405, 200]


def test_no_view_or_hook_is_a_coroutine_function(reader):
    """The app does not wrap async functions (service.SyncFlask): there must be none."""
    app = reader.application
    functions = list(app.view_functions.values())
    for hooks in (*app.before_request_funcs.values(), *app.after_request_funcs.values()):
        functions.extend(hooks)
    for handlers in app.error_handler_spec.values():
        for by_class in handlers.values():
            functions.extend(by_class.values())
    assert len(functions) > 10
    assert not [f for f in functions if inspect.iscoroutinefunction(f)]


def test_no_log_record_carries_a_key(app, client, seeded, log_records):
    client.get("/api/export?limit=1", headers=DEF)
    client.get("/api/export?limit=1", headers={"Authorization": "Bearer key_DEF456"})
    client.get("/api/export?limit=1", headers={"X-API-Key": "key_ZZZ999_not_a_key"})
    client.get("/api/export?api_key=key_DEF456", headers=DEF)  # pasted into the query
    client.get("/api/key_DEF456", headers=DEF)  # pasted into the path
    client.get("/api/export", headers={**DEF, "X-Request-ID": "key_DEF456"})
    flush_audit(app)
    assert log_records.records
    prefixes = [r.key_prefix for r in request_records(log_records)]
    assert prefixes == ["key_DE", "key_DE", None, "key_DE", None, "key_DE"]
    for record in log_records.records:
        text = record_text(record)
        for secret in ("key_DEF456", "DEF456", "key_ZZZ999", "ZZZ999"):
            assert secret not in text, (record.name, text)
    dump = seeded.dump()
    assert "DEF456" not in dump and "ZZZ999" not in dump


def test_client_request_id_is_kept_only_when_well_formed(reader):
    good = str(uuid.uuid4())
    assert reader.get("/health", headers={"X-Request-ID": good}).headers["X-Request-ID"] == good
    sent = "key_DEF456-abc"
    echoed = reader.get("/health", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
    assert echoed != sent and len(echoed) == 32


# ---------------------------------------------------------------------------------------------
# Legacy routes are gone


@pytest.mark.parametrize("route", LEGACY_ROUTES)
@pytest.mark.parametrize("headers", [{}, DEF, ABC], ids=["no-key", "def", "abc"])
@pytest.mark.parametrize(
    "query", ["", "?status=active", "?email=importer@example.com", "?status=' OR '1'='1"]
)
def test_legacy_route_is_404_and_discloses_nothing(reader, route, headers, query):
    for method in ("GET", "POST"):
        response = reader.open(route + query, method=method, headers=headers)
        assert_error(response, 404, "not_found")
        text = response.get_data(as_text=True).lower()
        for word in FORBIDDEN_WORDS:
            assert word not in text, (word, text)
