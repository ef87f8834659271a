"""Guessing keys against the real service (four gunicorn workers, behind one trusted proxy): the
limit of failed authentications per address is shared by every worker, answered 429 with
Retry-After, and never touches a client at another address."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LIMIT, GUESSES = 20, 300


def test_guessing_from_one_address_is_limited_across_workers(sample_database, serve):
    served = serve(
        sample_database,
        workers=4,
        extra_env={"TRUSTED_PROXIES": "1", "AUTH_FAILURES_PER_MINUTE": str(LIMIT)},
    )
    start = threading.Barrier(30)

    def guess(n: int) -> requests.Response:
        if n < 30:
            start.wait()
        return requests.get(
            served.url + "/api/export?limit=1",
            timeout=30,
            headers={
                "X-API-Key": f"wk_{n:032d}",
                "X-Forwarded-For": "203.0.113.7",
                "Connection": "close",
            },
        )

    def client(_n: int) -> requests.Response:
        return requests.get(
            served.url + "/api/export?limit=1",
            timeout=30,
            headers={"X-API-Key": "key_DEF456", "X-Forwarded-For": "198.51.100.9"},
        )

    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    with ThreadPoolExecutor(max_workers=30) as pool:
        guesses = pool.map(guess, range(GUESSES))
        clients = pool.map(client, range(30))
        guesses, clients = list(guesses), list(clients)
    same_minute = datetime.now(UTC).replace(second=0, microsecond=0) == minute
    statuses = Counter(r.status_code for r in guesses)
    print(
        f"{GUESSES} guesses from one address, limit {LIMIT}/min: {dict(statuses)}; "
        f"client at another address: {dict(Counter(r.status_code for r in clients))}"
    )
    assert set(statuses) == {401, 429}
    # Exactly the limit, or twice at most when the run straddled a minute.
    assert statuses[401] == LIMIT if same_minute else statuses[401] <= 2 * LIMIT
    refused = [r for r in guesses if r.status_code == 429]
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)
    assert {r.json()["error"]["code"] for r in refused} == {"too_many_failed_authentications"}
    assert Counter(r.status_code for r in clients) == {200: 30}
