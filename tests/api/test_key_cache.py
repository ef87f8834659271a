"""The per-worker key cache (service/key_cache.py, KEY_CACHE_SECONDS): a spent key's refusal and
/api/usage need no statement; a change to a key is seen by them within the lifetime, and by
admissions at once, because the quota UPDATE re-checks the stored row. Time is frozen with
freezegun (which also moves the monotonic clock the cache ages on); nothing sleeps."""

from __future__ import annotations

from datetime import date

import pytest
from freezegun import freeze_time

ABC = {"X-API-Key": "key_ABC123"}  # limit 5, scope export
EXPORT = "/api/export?limit=1"
USAGE = "/api/usage"
NOON = "2026-11-26T12:00:00Z"


def spend(sql, key_id=1, day=date(2026, 11, 26)):
    sql.run(
        "UPDATE api_keys SET calls_made = rate_limit, last_reset = %s WHERE id = %s", (day, key_id)
    )


def calls_made(sql, key_id=1) -> int:
    return sql.value("SELECT calls_made FROM api_keys WHERE id = %s", (key_id,))


def test_a_cached_spent_key_is_refused_and_shown_without_the_database(
    app_factory, seeded, db_relay
):
    """With the database cut, the cached row still answers the 429 and /api/usage: they ask it
    nothing. An admission cannot come from the cache: the key's other route fails closed (503)."""
    spend(seeded)
    app = app_factory(DB_PORT=db_relay.port, DB_CONNECT_TIMEOUT=1, KEY_CACHE_SECONDS=5)
    client = app.test_client()
    with freeze_time(NOON) as frozen:
        assert client.get(EXPORT, headers=ABC).status_code == 429  # reads the row, keeps it
        db_relay.cut()
        frozen.tick(4.9)
        refused = client.get(EXPORT, headers=ABC)
        usage = client.get(USAGE, headers=ABC)
        frozen.tick(0.1)  # the lifetime is over: the row must be read again
        unavailable = client.get(EXPORT, headers=ABC)
    db_relay.restore()
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Used"] == "5"
    assert usage.status_code == 200 and usage.get_json()["used"] == 5
    assert unavailable.status_code == 503


def test_without_the_cache_every_request_reads_the_database(app_factory, seeded, db_relay):
    spend(seeded)
    client = app_factory(
        DB_PORT=db_relay.port, DB_CONNECT_TIMEOUT=1, KEY_CACHE_SECONDS=0
    ).test_client()
    with freeze_time(NOON):
        assert client.get(EXPORT, headers=ABC).status_code == 429
        db_relay.cut()
        assert client.get(EXPORT, headers=ABC).status_code == 503
        assert client.get(USAGE, headers=ABC).status_code == 503
    db_relay.restore()


def test_a_reset_or_raised_limit_is_seen_by_refusals_within_the_lifetime(app_factory, seeded):
    spend(seeded)
    client = app_factory(KEY_CACHE_SECONDS=2).test_client()
    with freeze_time(NOON) as frozen:
        assert client.get(EXPORT, headers=ABC).status_code == 429
        seeded.run("UPDATE api_keys SET calls_made = 0 WHERE id = 1")  # keys reset-usage
        frozen.tick(1.9)
        stale = [client.get(EXPORT, headers=ABC).status_code, client.get(USAGE, headers=ABC)]
        frozen.tick(0.1)
        fresh = [client.get(EXPORT, headers=ABC), client.get(USAGE, headers=ABC)]
        seeded.run("UPDATE api_keys SET calls_made = 5, rate_limit = 7 WHERE id = 1")
        frozen.tick(2)
        raised = client.get(EXPORT, headers=ABC)
    assert stale[0] == 429 and stale[1].get_json()["used"] == 5
    assert fresh[0].status_code == 200 and fresh[0].headers["X-RateLimit-Used"] == "1"
    assert fresh[1].get_json()["used"] == 1  # this worker's own admission, without a read
    assert raised.status_code == 200 and raised.headers["X-RateLimit-Limit"] == "7"
    assert raised.headers["X-RateLimit-Used"] == "6"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ("UPDATE api_keys SET is_valid = 0, revoked_at = NOW() WHERE id = 1", 403, "key_disabled"),
        ("UPDATE api_keys SET expires_at = '2026-11-25' WHERE id = 1", 401, "key_expired"),
        (
            "UPDATE users SET is_active = 0 WHERE id = (SELECT user_id FROM api_keys WHERE id = 1)",
            403,
            "key_disabled",
        ),
        ("UPDATE api_keys SET scopes = 'audit' WHERE id = 1", 403, "insufficient_scope"),
    ],
    ids=["revoked", "expired", "owner-disabled", "scope-removed"],
)
def test_a_revoked_key_is_never_admitted_from_the_cache(app_factory, seeded, change, status, code):
    client = app_factory(KEY_CACHE_SECONDS=60).test_client()
    with freeze_time(NOON):
        assert client.get(EXPORT, headers=ABC).status_code == 200  # the row is cached
        seeded.run(change)
        refused = client.get(EXPORT, headers=ABC)  # same instant: the cached row is fresh
        usage = client.get(USAGE, headers=ABC)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (status, code)
    assert calls_made(seeded) == 1  # nothing charged
    # The refusal read the stored row again and keeps that one: /api/usage agrees at once.
    assert usage.status_code == (200 if code == "insufficient_scope" else status)


def test_a_cached_count_behind_other_workers_never_passes_the_limit(app_factory, seeded):
    """Another worker spends the key while this one holds an older row: the UPDATE refuses, and
    the 429 tells the stored count."""
    client = app_factory(KEY_CACHE_SECONDS=60).test_client()
    with freeze_time(NOON):
        assert client.get(EXPORT, headers=ABC).headers["X-RateLimit-Used"] == "1"
        spend(seeded)  # the other workers' four admissions
        refused = client.get(EXPORT, headers=ABC)
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Used"] == "5"
    assert calls_made(seeded) == 5


def test_a_cached_spent_key_is_free_at_midnight_at_once(app_factory, seeded):
    client = app_factory(KEY_CACHE_SECONDS=60).test_client()
    with freeze_time("2026-11-26T23:59:59.5Z") as frozen:
        spend(seeded)
        assert client.get(EXPORT, headers=ABC).status_code == 429
        frozen.tick(0.5)  # 00:00:00 UTC, well within the lifetime
        admitted = client.get(EXPORT, headers=ABC)
    assert admitted.status_code == 200 and admitted.headers["X-RateLimit-Used"] == "1"
    assert seeded.one("SELECT calls_made, last_reset FROM api_keys WHERE id = 1") == {
        "calls_made": 1,
        "last_reset": date(2026, 11, 27),
    }
