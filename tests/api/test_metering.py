"""The one quota-charging rule (service/metering.py), status by status.

"A request costs one unit of the daily quota only when the service did the work": every check
that needs no database runs before metering, refusals cost nothing, and a failure on the
service's side after charging gives the unit back (same UTC day only, never below 0).
"""

from __future__ import annotations

import json
from datetime import date

import pymysql
import pytest
from freezegun import freeze_time

from service import metering
from service.repositories import api_keys
from service.repositories import articles as articles_repo

ABC = {"X-API-Key": "key_ABC123"}  # user 1: export, import; limit 5
DEF = {"X-API-Key": "key_DEF456"}  # user 2: export, audit
TODAY = "2026-11-26T10:00:00Z"


def used(sql, key_id: int = 1) -> int:
    return sql.value("SELECT calls_made FROM api_keys WHERE id = %s", (key_id,))


def record(n: int = 0, **changes) -> dict:
    article = {
        "title": f"Metered {n}",
        "url": f"https://en.wikipedia.org/wiki/Metered_{n}",
        "language": "en",
        "summary": "A summary.",
        "updated_at": "2026-03-01T12:00:00Z",
    }
    article.update(changes)
    return article


def deadlock(*_args, **_kwargs):
    raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")


def connection_lost(*_args, **_kwargs):
    raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")


def broken(*_args, **_kwargs):
    raise RuntimeError("a bug")


def test_200_costs_one_unit(client, seeded):
    with freeze_time(TODAY):
        response = client.get("/api/export?limit=1", headers=ABC)
    assert response.status_code == 200
    assert used(seeded) == 1
    assert response.headers["X-RateLimit-Used"] == "1"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("get", "/api/export?limit=abc", {}, 400),
        ("get", "/api/export?limit=1&limit=2", {}, 400),
        ("post", "/api/import", {"data": "[{", "content_type": "application/json"}, 400),
        ("post", "/api/import", {"json": [record(url="http://insecure.example/x")]}, 400),
        ("post", "/api/import", {"data": "{}\n{", "content_type": "application/x-ndjson"}, 400),
        ("post", "/api/import", {"data": "[" * 100_000, "content_type": "application/json"}, 400),
        ("post", "/api/import", {"data": "x", "content_type": "text/plain"}, 415),
        (
            "post",
            "/api/import",
            {"data": b"[" + b" " * 200_000 + b"]", "content_type": "application/json"},
            413,
        ),
        ("get", "/api/audit", {}, 403),
        ("get", "/api/nothing-here", {}, 404),
        ("delete", "/api/export", {}, 405),
    ],
)
def test_refused_requests_cost_nothing(app_factory, seeded, method, path, kwargs, status):
    client = app_factory(MAX_BODY_BYTES=150_000).test_client()
    with freeze_time(TODAY):
        response = getattr(client, method)(path, headers=ABC, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert used(seeded) == 0


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_key"),
        ({"X-API-Key": "key_ABC124"}, "invalid_key"),
        (ABC, "key_expired"),
    ],
)
def test_401_costs_nothing(client, seeded, headers, code):
    seeded.run("UPDATE api_keys SET expires_at = '2026-01-01' WHERE id = 1")
    with freeze_time(TODAY):
        response = client.get("/api/export?limit=1", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == code
    assert used(seeded) == 0


def test_403_of_a_disabled_key_costs_nothing(client, seeded):
    seeded.run("UPDATE api_keys SET is_valid = 0 WHERE id = 1")
    with freeze_time(TODAY):
        assert client.get("/api/export?limit=1", headers=ABC).status_code == 403
    assert used(seeded) == 0


def test_429_costs_nothing(client, seeded):
    seeded.run("UPDATE api_keys SET calls_made = 5, last_reset = '2026-11-26' WHERE id = 1")
    with freeze_time(TODAY):
        statuses = [client.get("/api/export?limit=1", headers=ABC).status_code for _ in range(3)]
    assert statuses == [429] * 3
    assert used(seeded) == 5


def test_500_after_metering_gives_the_unit_back(client, seeded, monkeypatch):
    monkeypatch.setattr(articles_repo, "json_page", broken)
    with freeze_time(TODAY):
        response = client.get("/api/export?limit=1", headers=ABC)
    assert response.status_code == 500
    assert used(seeded) == 0
    assert response.headers["X-RateLimit-Used"] == "0"
    assert response.headers["X-RateLimit-Remaining"] == "5"


def test_503_database_lost_after_metering_gives_the_unit_back(client, seeded, monkeypatch):
    monkeypatch.setattr(articles_repo, "json_page", connection_lost)
    with freeze_time(TODAY):
        response = client.get("/api/export?limit=1", headers=ABC)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "db_unavailable"
    assert used(seeded) == 0


def test_503_busy_after_metering_gives_the_unit_back(client, seeded, monkeypatch):
    monkeypatch.setattr(articles_repo, "upsert_many", deadlock)
    with freeze_time(TODAY):
        response = client.post("/api/import", json=[record()], headers=ABC)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_busy"
    assert response.headers["Retry-After"].isdigit()
    assert used(seeded) == 0
    assert seeded.value("SELECT COUNT(*) FROM articles WHERE url LIKE '%%Metered%%'") == 0


def test_503_database_unreachable_before_metering_costs_nothing(app_factory, seeded, db_relay):
    client = app_factory(DB_PORT=db_relay.port).test_client()
    db_relay.cut()
    with freeze_time(TODAY):
        response = client.get("/api/export?limit=1", headers=ABC)
    assert response.status_code == 503
    assert used(seeded) == 0


def test_a_refund_never_touches_another_day(app, seeded):
    # Charged on the 25th; by the time the failure is settled the count belongs to the 26th.
    seeded.run("UPDATE api_keys SET calls_made = 3, last_reset = '2026-11-26' WHERE id = 1")
    with app.app_context():
        db = app.extensions["db"]
        with db.cursor() as cur:
            assert api_keys.refund_quota(cur, 1, date(2026, 11, 25)) is False
            assert used(seeded) == 3
            assert api_keys.refund_quota(cur, 1, date(2026, 11, 26)) is True
    assert used(seeded) == 2


def test_a_refund_never_goes_below_zero(app, seeded):
    seeded.run("UPDATE api_keys SET calls_made = 0, last_reset = '2026-11-26' WHERE id = 1")
    with app.app_context(), app.extensions["db"].cursor() as cur:
        assert api_keys.refund_quota(cur, 1, date(2026, 11, 26)) is False
    assert used(seeded) == 0


def test_import_body_is_checked_whole_before_the_unit_is_charged(client, seeded):
    # The bad record is the last of 50: before the fix the import was charged, then refused.
    body = [record(n) for n in range(49)] + [record(49, language="english!")]
    with freeze_time(TODAY):
        response = client.post("/api/import", json=body, headers=ABC)
    assert response.status_code == 400
    assert used(seeded) == 0
    with freeze_time(TODAY):
        ok = client.post("/api/import", json=body[:49], headers=ABC)
    assert ok.status_code == 200 and ok.get_json()["imported"] == 49
    assert used(seeded) == 1


@pytest.mark.parametrize("limit", [0, -1, -2147483648])
def test_a_limit_of_zero_or_less_admits_nothing_on_any_day(client, seeded, limit):
    seeded.run(
        "UPDATE api_keys SET rate_limit = %s, calls_made = 0, last_reset = NULL WHERE id = 1",
        (limit,),
    )
    for day in ("2026-11-26T10:00:00Z", "2026-11-27T00:00:00Z", "2026-11-28T23:59:59Z"):
        with freeze_time(day):
            response = client.get("/api/export?limit=1", headers=ABC)
        assert response.status_code == 429, day
        assert response.headers["X-RateLimit-Limit"] == "0"
        assert response.headers["X-RateLimit-Used"] == "0"
        assert response.headers["X-RateLimit-Remaining"] == "0"
    with freeze_time("2026-11-28T12:00:00Z"):
        usage = client.get("/api/usage", headers=ABC).get_json()
    assert (usage["limit"], usage["used"], usage["remaining"]) == (0, 0, 0)
    assert used(seeded) == 0


def test_the_consume_update_itself_refuses_a_zero_limit(app, seeded):
    # Even without the read's shortcut, the atomic UPDATE admits nothing on a new day.
    seeded.run("UPDATE api_keys SET rate_limit = 0, calls_made = 0, last_reset = NULL WHERE id = 1")
    with app.app_context(), app.extensions["db"].cursor() as cur:
        assert api_keys.consume_quota(cur, 1, date(2026, 11, 26)) == (False, None)
    assert used(seeded) == 0


def test_the_rule_is_stated_once_in_code():
    assert metering.RULE.startswith("A request costs one unit of the daily quota only when")
    assert json.dumps(metering.RULE)  # plain text, quoted verbatim by the documents


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [("expires_at = '2026-01-01'", 401, "key_expired"), ("is_valid = 0", 403, "key_disabled")],
)
def test_a_refused_known_key_is_audited_under_its_prefix(app, seeded, change, status, code):
    seeded.run(f"UPDATE api_keys SET {change} WHERE id = 1")
    with freeze_time(TODAY):
        response = app.test_client().get("/api/export?limit=1", headers=ABC)
    assert response.status_code == status
    app.extensions["audit"].flush()
    row = seeded.one(
        "SELECT key_id, key_prefix, response_code, error_code FROM audit_logs "
        "WHERE request_id = %s",
        (response.headers["X-Request-ID"],),
    )
    assert row == {"key_id": 1, "key_prefix": "key_AB", "response_code": status, "error_code": code}
