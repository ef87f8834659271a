"""TICKET-001 through the app and a real database: reset at 00:00 UTC, headers, fail closed.

Time is frozen with freezegun and moved across midnight; nothing sleeps for a reset.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from freezegun import freeze_time

from service.config import Settings
from testkit import free_port, host_tz, wait_until

ABC = {"X-API-Key": "key_ABC123"}  # limit 5
DEF = {"X-API-Key": "key_DEF456"}
EXPORT = "/api/export?limit=1"
KEY_CACHE_SECONDS = Settings.KEY_CACHE_SECONDS


def state(sql, key_id=1) -> tuple[int, date | None]:
    row = sql.one("SELECT calls_made, last_reset FROM api_keys WHERE id = %s", (key_id,))
    return row["calls_made"], row["last_reset"]


def reset_epoch(day: str) -> str:
    return str(int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()))


def test_five_admitted_with_headers_counting_down_then_429(client, seeded):
    with freeze_time("2026-11-26T14:22:01Z"):
        for remaining in (4, 3, 2, 1, 0):
            response = client.get(EXPORT, headers=ABC)
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Limit"] == "5"
            assert response.headers["X-RateLimit-Remaining"] == str(remaining)
            assert response.headers["X-RateLimit-Used"] == str(5 - remaining)
            assert response.headers["X-RateLimit-Reset"] == reset_epoch("2026-11-27")
            assert response.headers["RateLimit-Policy"] == '"daily";q=5;w=86400'
            assert response.headers["RateLimit"] == f'"daily";r={remaining};t=34679'
        refused = client.get(EXPORT, headers=ABC)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Used"] == "5"
    assert refused.headers["X-RateLimit-Reset"] == reset_epoch("2026-11-27")
    assert 34679 <= int(refused.headers["Retry-After"]) <= 34679 + 30
    error = refused.get_json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["reset_at"] == "2026-11-27T00:00:00Z"
    assert "00:00 UTC" in error["message"] and "2026-11-27T00:00:00Z" in error["message"]


def test_refused_requests_do_not_count(client, seeded):
    with freeze_time("2026-11-26T10:00:00Z"):
        statuses = [client.get(EXPORT, headers=ABC).status_code for _ in range(12)]
    assert statuses == [200] * 5 + [429] * 7
    assert state(seeded) == (5, date(2026, 11, 26))


def test_quota_resets_at_midnight_without_sleeping(client, seeded):
    with freeze_time("2026-11-26T23:59:59.999Z") as frozen:
        assert [client.get(EXPORT, headers=ABC).status_code for _ in range(6)] == [200] * 5 + [429]
        frozen.move_to("2026-11-27T00:00:00.000Z")
        first = client.get(EXPORT, headers=ABC)
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Used"] == "1"
    assert first.headers["X-RateLimit-Reset"] == reset_epoch("2026-11-28")
    assert state(seeded) == (1, date(2026, 11, 27))


def test_a_key_spent_yesterday_is_free_today(client, seeded):
    seeded.run("UPDATE api_keys SET calls_made = 5, last_reset = '2026-11-25' WHERE id = 1")
    with freeze_time("2026-11-26T15:00:00Z"):
        usage = client.get("/api/usage", headers=ABC).get_json()
        response = client.get(EXPORT, headers=ABC)
    assert usage["used"] == 0 and usage["remaining"] == 5
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "4"


def test_legacy_defect_1_reset_is_not_limited_to_the_first_seconds_after_midnight(client, seeded):
    """The legacy service reset only if a request arrived in the first 5 s after 00:00 UTC."""
    with freeze_time("2026-11-26T14:22:01Z") as frozen:
        for _ in range(5):
            client.get(EXPORT, headers=ABC)
        # The ticket's repro: five minutes later it is still the same UTC day, so still 429.
        frozen.move_to("2026-11-26T14:27:01Z")
        assert client.get(EXPORT, headers=ABC).status_code == 429
        # Nobody calls around midnight; the first call of the next day is hours after it.
        frozen.move_to("2026-11-27T09:15:00Z")
        assert client.get(EXPORT, headers=ABC).status_code == 200
    assert state(seeded) == (1, date(2026, 11, 27))


def test_legacy_stuck_counter_with_no_stored_day_is_freed(client, seeded):
    # What migration 0002 leaves for every legacy key: the count with no day.
    seeded.run("UPDATE api_keys SET calls_made = 5, last_reset = NULL WHERE id = 1")
    with freeze_time("2026-11-26T12:00:00Z"):
        response = client.get(EXPORT, headers=ABC)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Used"] == "1"


def test_a_changed_limit_applies_within_the_key_cache_lifetime(client, seeded):
    """A lowered limit refuses the next request (the UPDATE decides on the stored row); a raised
    one is seen by the refusal of a spent key once the worker's cached row is older than
    KEY_CACHE_SECONDS (tests/api/test_key_cache.py has the edges)."""
    with freeze_time("2026-11-26T08:00:00Z") as frozen:
        for _ in range(5):
            client.get(EXPORT, headers=ABC)
        assert client.get(EXPORT, headers=ABC).status_code == 429
        seeded.run("UPDATE api_keys SET rate_limit = 7 WHERE id = 1")
        frozen.tick(KEY_CACHE_SECONDS)
        raised = client.get(EXPORT, headers=ABC)
        assert raised.status_code == 200
        assert raised.headers["X-RateLimit-Limit"] == "7"
        assert raised.headers["X-RateLimit-Used"] == "6"
        seeded.run("UPDATE api_keys SET rate_limit = 3 WHERE id = 1")
        lowered = client.get(EXPORT, headers=ABC)  # the cached row (6 of 7) would admit it
    assert lowered.status_code == 429
    assert lowered.headers["X-RateLimit-Limit"] == "3"
    assert lowered.headers["X-RateLimit-Remaining"] == "0"


def test_metered_routes_consume_and_usage_does_not(client, seeded):
    seeded.run("UPDATE api_keys SET scopes = 'export,import,audit' WHERE id = 1")
    with freeze_time("2026-11-26T08:00:00Z"):
        for _ in range(4):
            usage = client.get("/api/usage", headers=ABC)
            assert usage.status_code == 200
        assert state(seeded)[0] == 0
        assert client.get("/api/audit", headers=ABC).headers["X-RateLimit-Used"] == "1"
        imported = client.post("/api/import", json=[], headers=ABC)
        assert imported.status_code == 200 and imported.headers["X-RateLimit-Used"] == "2"
        assert client.get(EXPORT, headers=ABC).headers["X-RateLimit-Used"] == "3"
        usage = client.get("/api/usage", headers=ABC).get_json()
    assert usage == {
        "status": "success",
        "key": "key_AB...",
        "limit": 5,
        "used": 3,
        "remaining": 2,
        "window": "UTC calendar day",
        "window_start": "2026-11-26T00:00:00Z",
        "reset_at": "2026-11-27T00:00:00Z",
        "reset_in_seconds": 57600,
    }


def test_requests_refused_before_metering_do_not_count(client, seeded):
    # No scope (403) and unknown/missing keys (401) never touch the counter.
    for _ in range(3):
        assert client.get("/api/audit", headers=ABC).status_code == 403
        assert client.get(EXPORT, headers={"X-API-Key": "key_ABC124"}).status_code == 401
    assert state(seeded)[0] == 0


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu"])
def test_host_time_zone_does_not_move_the_window(app_factory, seeded, zone):
    # 11:00 UTC on the 26th is already the 27th in Kiritimati (+14) and still the 26th in
    # Pago Pago (-11): the stored day and the reset must follow UTC in both.
    with host_tz(zone):
        client = app_factory().test_client()
        with freeze_time("2026-11-26T11:00:00Z"):
            response = client.get(EXPORT, headers=ABC)
    assert response.headers["X-RateLimit-Reset"] == reset_epoch("2026-11-27")
    assert state(seeded) == (1, date(2026, 11, 26))


@pytest.mark.parametrize("db_zone", ["+13:00", "-12:00"])
def test_database_time_zone_does_not_move_the_window(app_factory, seeded, db_zone):
    client = app_factory(DB_TIME_ZONE=db_zone).test_client()
    with freeze_time("2026-11-26T23:30:00Z") as frozen:
        assert [client.get(EXPORT, headers=ABC).status_code for _ in range(6)] == [200] * 5 + [429]
        frozen.move_to("2026-11-27T00:00:01Z")
        assert client.get(EXPORT, headers=ABC).status_code == 200
    assert state(seeded) == (1, date(2026, 11, 27))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # New York springs forward at 07:00 UTC on 2026-03-08; falls back at 06:00 UTC, 11-01.
        ("2026-03-08T06:59:59Z", "2026-03-08T07:00:01Z"),
        ("2026-11-01T05:59:59Z", "2026-11-01T06:00:01Z"),
    ],
)
def test_dst_changes_on_the_host_do_not_reset_or_extend_the_day(app_factory, seeded, before, after):
    with host_tz("America/New_York"):
        client = app_factory().test_client()
        with freeze_time(before) as frozen:
            for _ in range(5):
                client.get(EXPORT, headers=ABC)
            frozen.move_to(after)
            still_refused = client.get(EXPORT, headers=ABC)
            frozen.move_to(after[:10] + "T23:59:59Z")
            last_second = client.get(EXPORT, headers=ABC)
            frozen.move_to(after[:10] + "T00:00:00Z")
    assert still_refused.status_code == 429
    assert last_second.status_code == 429


def test_a_lagging_instance_never_rewinds_the_day(app_factory, seeded):
    """Two instances whose clocks straddle midnight: the stored day only moves forward."""
    ahead, behind = app_factory().test_client(), app_factory().test_client()
    with freeze_time("2026-11-27T00:00:00.200Z"):
        assert ahead.get(EXPORT, headers=ABC).status_code == 200
    with freeze_time("2026-11-26T23:59:59.900Z"):
        response = behind.get(EXPORT, headers=ABC)
    assert response.status_code == 200
    assert state(seeded) == (2, date(2026, 11, 27))


def test_a_burst_straddling_midnight_admits_exactly_the_limit_per_day(app_factory, seeded):
    """Threads fire without pause while the frozen clock crosses 00:00:00.000 UTC."""
    seeded.run("UPDATE api_keys SET rate_limit = 20 WHERE id = 1")
    app = app_factory()
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def fire():
        client = app.test_client()
        while not stop.is_set():
            r = client.get(EXPORT, headers=ABC)
            with lock:
                results.append((r.status_code, r.headers["X-RateLimit-Reset"]))

    with freeze_time("2026-11-26T23:59:59.999Z") as frozen:
        threads = [threading.Thread(target=fire) for _ in range(8)]
        for t in threads:
            t.start()
        wait_until(lambda: sum(1 for s, _ in results if s == 429) >= 30)
        frozen.move_to("2026-11-27T00:00:00.000Z")
        wait_until(lambda: sum(1 for s, r in results if r == reset_epoch("2026-11-28")) >= 60)
        stop.set()
        for t in threads:
            t.join()
    admitted = [r for s, r in results if s == 200]
    # Day one was spent before the clock moved (30 refusals were seen), so exactly 20 + 20
    # were admitted. A request that read the clock just before 00:00 but reached the database
    # after the first request of the new day is counted in the new day (the stored day never
    # moves back), so its headers may name the earlier reset: hence no per-header split.
    assert len(admitted) == 40
    assert admitted.count(reset_epoch("2026-11-27")) >= 20
    assert state(seeded) == (20, date(2026, 11, 27))


def test_fails_closed_with_503_when_the_database_cannot_be_asked(app_factory, seeded, db_relay):
    client = app_factory(DB_PORT=db_relay.port, DB_CONNECT_TIMEOUT=1).test_client()
    assert client.get(EXPORT, headers=DEF).status_code == 200
    db_relay.cut()
    down = [client.get(EXPORT, headers=DEF) for _ in range(3)]
    for response in down:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.get_json()["error"]["code"] == "db_unavailable"
        assert "X-RateLimit-Remaining" not in response.headers
    db_relay.restore()
    back = client.get(EXPORT, headers=DEF)
    assert back.status_code == 200
    assert back.headers["X-RateLimit-Used"] == "2"


def test_unreachable_database_is_503_never_a_pass_or_429(app_factory, seeded):
    client = app_factory(DB_PORT=free_port(), DB_CONNECT_TIMEOUT=1).test_client()
    for path in (EXPORT, "/api/audit", "/api/usage"):
        response = client.get(path, headers=DEF)
        assert response.status_code == 503, path
        assert int(response.headers["Retry-After"]) > 0


def test_options_preflight_needs_no_key_and_costs_nothing(client, seeded):
    response = client.options("/api/export", headers=ABC)
    assert response.status_code == 200
    assert "GET" in response.headers["Allow"]
    assert "X-RateLimit-Used" not in response.headers
    assert state(seeded)[0] == 0


def test_a_request_with_bad_parameters_is_refused_before_metering(client, seeded):
    for query in ("?limit=0", "?limt=5", "?since=yesterday", "?cursor=%%%", "?format=xml"):
        assert client.get("/api/export" + query, headers=ABC).status_code == 400
    assert state(seeded)[0] == 0


def test_every_401_names_the_authentication_scheme(client, seeded):
    for headers in ({}, {"X-API-Key": "nope"}):
        response = client.get("/api/export", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_the_hook_answers_a_refusal_as_the_apps_error_handler_does(client, seeded, monkeypatch):
    """The quota refusal is returned by the hook (cheaper than Flask's error handling): the same
    status, headers in the same order, and body as when the ApiError went through the handler."""
    from service.blueprints import api

    def answer(through_handler: bool):
        if through_handler:
            monkeypatch.setattr(api, "api_error_response", lambda exc: (_ for _ in ()).throw(exc))
        monkeypatch.setattr("service.quota.random.randint", lambda low, high: 7)  # the jitter
        with freeze_time("2026-11-26T14:22:01Z"):
            response = client.get(EXPORT, headers=ABC)
        headers = [(k, v) for k, v in response.headers.items() if k != "X-Request-ID"]
        return response.status_code, headers, response.get_data()

    with freeze_time("2026-11-26T14:22:01Z"):
        for _ in range(5):
            assert client.get(EXPORT, headers=ABC).status_code == 200
    from_hook, from_handler = answer(False), answer(True)
    assert from_hook[0] == 429
    assert from_hook == from_handler
