"""A daily limit of 0 or less admits nothing, ever: 300 concurrent requests against the real
service (four gunicorn workers) on a key whose stored day is empty (a new day for the UPDATE)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from testkit import Sql, key_hash

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOTAL = 300
THREADS = 100


def burst(url: str, key: str) -> list[requests.Response]:
    start = threading.Barrier(THREADS)

    def worker(index: int) -> list[requests.Response]:
        start.wait()
        return [
            requests.get(
                url + "/api/export?limit=1",
                headers={"X-API-Key": key, "Connection": "close"},
                timeout=60,
            )
            for _ in range(index, TOTAL, THREADS)
        ]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return [r for chunk in pool.map(worker, range(THREADS)) for r in chunk]


@pytest.mark.parametrize("limit", [0, -5])
def test_300_concurrent_requests_on_a_limit_of_zero_or_less_admit_none(
    sample_database, serve, limit
):
    sql = Sql(sample_database)
    key = f"key_ZERO{abs(limit)}"
    # Set by SQL, as an operator might: the CLI itself refuses a negative limit.
    sql.run(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit, calls_made, "
        "is_valid, last_reset) VALUES (1, %s, LEFT(%s, 6), 'export', %s, 0, 1, NULL)",
        (key_hash(key), key, limit),
    )
    served = serve(sample_database, workers=4)
    responses = burst(served.url, key)
    statuses = Counter(r.status_code for r in responses)
    print(f"limit {limit}: {dict(statuses)}")
    assert statuses == {429: TOTAL}, statuses
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"0"}
    assert {r.headers["X-RateLimit-Used"] for r in responses} == {"0"}
    row = sql.one(
        "SELECT calls_made, last_reset FROM api_keys WHERE key_prefix = LEFT(%s, 6)", (key,)
    )
    assert row == {"calls_made": 0, "last_reset": None}
    sql.close()
