"""Exactness under real concurrency: hundreds of simultaneous HTTP requests against real gunicorn
workers, and against several instances sharing one database. Also the database going away
mid-run behind a relay that the test cuts, then recovery."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from testkit import Sql, TcpRelay, key_hash, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY = "key_CONC40"
LIMIT = 40
TOTAL = 500


def add_key(sql: Sql, key: str = KEY, limit: int = LIMIT) -> int:
    sql.run(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit, calls_made, "
        "is_valid) VALUES (1, %s, LEFT(%s, 6), 'export', %s, 0, 1)",
        (key_hash(key), key, limit),
    )
    return sql.value("SELECT id FROM api_keys WHERE key_prefix = LEFT(%s, 6)", (key,))


def burst(urls: list[str], total: int, threads: int = 200) -> list[requests.Response]:
    """`total` requests from `threads` threads released together, round-robin over `urls`;
    each request on a fresh connection."""
    start = threading.Barrier(threads)

    def worker(index: int) -> list[requests.Response]:
        start.wait()
        mine = []
        for n in range(index, total, threads):
            mine.append(
                requests.get(
                    urls[n % len(urls)] + "/api/export?limit=1",
                    headers={"X-API-Key": KEY, "Connection": "close"},
                    timeout=60,
                )
            )
        return mine

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(worker, range(threads)))
    return [response for chunk in results for response in chunk]


def assert_exact(responses, sql: Sql, key_id: int) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: LIMIT, 429: TOTAL - LIMIT}, statuses
    used = sorted(int(r.headers["X-RateLimit-Used"]) for r in responses if r.status_code == 200)
    assert used == list(range(1, LIMIT + 1)), "every admitted request saw its own unit"
    assert sql.value("SELECT calls_made FROM api_keys WHERE id = %s", (key_id,)) == LIMIT
    # Every request, admitted or refused, leaves exactly one audit row.
    wait_until(
        lambda: sql.value("SELECT COUNT(*) FROM audit_logs WHERE key_id = %s", (key_id,)) == TOTAL,
        timeout=15,
    )
    by_status = {
        row["response_code"]: row["n"]
        for row in sql.all(
            "SELECT response_code, COUNT(*) AS n FROM audit_logs WHERE key_id = %s "
            "GROUP BY response_code",
            (key_id,),
        )
    }
    assert by_status == {200: LIMIT, 429: TOTAL - LIMIT}


def test_500_requests_on_a_limit_of_40_admit_exactly_40_across_workers(sample_database, serve):
    sql = Sql(sample_database)
    key_id = add_key(sql)
    served = serve(sample_database, workers=4)
    responses = burst([served.url], TOTAL)
    assert_exact(responses, sql, key_id)
    sql.close()


def test_three_instances_sharing_one_database_admit_exactly_40(sample_database, serve):
    sql = Sql(sample_database)
    key_id = add_key(sql)
    instances = [serve(sample_database, workers=2) for _ in range(3)]
    responses = burst([s.url for s in instances], TOTAL)
    assert_exact(responses, sql, key_id)
    served_by = Counter(r.url.split("/api")[0] for r in responses)
    assert len(served_by) == 3 and min(served_by.values()) >= TOTAL // 3
    sql.close()


def test_database_going_away_mid_run_gives_503_then_recovers(sample_database, serve):
    relay = TcpRelay()
    sql = Sql(sample_database)
    try:
        served = serve(
            sample_database,
            workers=2,
            extra_env={"DB_PORT": str(relay.port), "DB_CONNECT_TIMEOUT": "1"},
        )
        url = served.url + "/api/export?limit=1"
        headers = {"X-API-Key": "key_DEF456"}
        assert all(
            requests.get(url, headers=headers, timeout=10).status_code == 200 for _ in range(4)
        )
        relay.cut()
        down = [requests.get(url, headers=headers, timeout=10) for _ in range(6)]
        assert [r.status_code for r in down] == [503] * 6
        for r in down:
            assert int(r.headers["Retry-After"]) > 0
            assert r.json()["error"]["code"] == "db_unavailable"
        assert requests.get(served.url + "/health", timeout=5).text == "OK"
        relay.restore()
        back = [requests.get(url, headers=headers, timeout=10).status_code for _ in range(4)]
        assert back == [200] * 4
        # The audit rows of the 503s waited in the buffer and are written after recovery.
        wait_until(
            lambda: (
                sql.value(
                    "SELECT COUNT(*) FROM audit_logs WHERE response_code = 503 "
                    "AND error_code = 'db_unavailable'"
                )
                == 6
            ),
            timeout=15,
        )
    finally:
        relay.close()
        sql.close()
