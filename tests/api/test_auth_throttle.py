"""Failed authentications limited per client address and minute (service/auth_throttle.py).

Addresses come through one trusted proxy (X-Forwarded-For, ProxyFix), as behind nginx.
"""

from __future__ import annotations

import hashlib

import pytest
from freezegun import freeze_time

ATTACKER, CLIENT = "203.0.113.7", "198.51.100.9"
DEF = "key_DEF456"  # valid: export, audit


def call(client, address: str, key: str | None):
    headers = {"X-Forwarded-For": address}
    if key is not None:
        headers["X-API-Key"] = key
    return client.get("/api/export?limit=1", headers=headers)


@pytest.fixture
def guarded(app_factory, seeded):
    return app_factory(TRUSTED_PROXIES=1, AUTH_FAILURES_PER_MINUTE=5).test_client()


def test_over_the_limit_an_address_gets_429_until_the_minute_ends(guarded, seeded):
    with freeze_time("2026-11-26T10:00:10Z") as frozen:
        statuses = [call(guarded, ATTACKER, f"key_GUESS{n}").status_code for n in range(5)]
        assert statuses == [401] * 5
        over = call(guarded, ATTACKER, "key_GUESS5")
        assert over.status_code == 429
        error = over.get_json()["error"]
        assert error["code"] == "too_many_failed_authentications"
        assert over.headers["Retry-After"] == "50"
        # Decided: the address is refused whatever key it presents, or a right guess would pass.
        assert call(guarded, ATTACKER, DEF).status_code == 429
        # No key at all is not a guess: still the plain 401.
        assert call(guarded, ATTACKER, None).get_json()["error"]["code"] == "missing_key"
        # Nobody else is affected, with the same key or a wrong one.
        assert call(guarded, CLIENT, DEF).status_code == 200
        assert call(guarded, CLIENT, "key_TYPO").status_code == 401
        frozen.move_to("2026-11-26T10:01:00Z")
        assert call(guarded, ATTACKER, DEF).status_code == 200
        assert call(guarded, ATTACKER, "key_GUESS6").status_code == 401


def test_the_count_is_shared_by_every_worker(app_factory, seeded):
    # Two apps on one database stand for two gunicorn workers (the served test has real ones).
    first, second = (
        app_factory(TRUSTED_PROXIES=1, AUTH_FAILURES_PER_MINUTE=4).test_client() for _ in range(2)
    )
    with freeze_time("2026-11-26T10:00:10Z"):
        statuses = [call(c, ATTACKER, "key_GUESS").status_code for c in (first, second) * 3]
    assert statuses == [401, 401, 401, 401, 429, 429]


def test_no_address_is_stored_and_past_minutes_are_purged(guarded, seeded):
    with freeze_time("2026-11-26T10:00:10Z") as frozen:
        for n in range(3):
            call(guarded, ATTACKER, f"key_GUESS{n}")
        frozen.move_to("2026-11-26T10:05:00Z")
        call(guarded, CLIENT, "key_GUESS")
    dump = seeded.dump()
    for address in (ATTACKER, CLIENT):
        assert address not in dump
        assert hashlib.sha256(address.encode()).hexdigest() not in dump
    rows = seeded.all("SELECT window_start, failures FROM auth_failures")
    assert [(str(r["window_start"]), r["failures"]) for r in rows] == [("2026-11-26 10:05:00", 1)]
    assert seeded.value("SELECT COUNT(*) FROM auth_failure_salts") == 1


def test_a_limit_of_zero_turns_it_off(app_factory, seeded):
    client = app_factory(TRUSTED_PROXIES=1, AUTH_FAILURES_PER_MINUTE=0).test_client()
    with freeze_time("2026-11-26T10:00:10Z"):
        statuses = {call(client, ATTACKER, f"key_G{n}").status_code for n in range(40)}
    assert statuses == {401}
