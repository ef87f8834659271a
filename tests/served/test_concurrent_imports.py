"""Concurrent imports of the same URLs, against the real service: 48 imports of 400 records, 8 at a
time. Deadlocks and lock wait timeouts are retried (Database.retrying); an import that still
collides is a 503 `service_busy`, never `db_unavailable` ("cannot reach its database")."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from testkit import Sql, key_hash

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY = "key_IMPORTS48"
IMPORTS, RECORDS, AT_ONCE = 48, 400, 8


def body(n: int) -> list[dict]:
    # Every import touches the same 400 URLs, in an order of its own.
    order = list(range(RECORDS))
    order = order[n % RECORDS :] + order[: n % RECORDS]
    if n % 2:
        order.reverse()
    return [
        {
            "title": f"Shared {i} from import {n}",
            "url": f"https://en.wikipedia.org/wiki/Shared_{i}",
            "language": "en",
            "summary": f"Written by import {n}.",
            "updated_at": "2026-03-01T12:00:00Z",
        }
        for i in order
    ]


def test_48_concurrent_imports_of_the_same_urls_never_say_the_database_is_down(
    sample_database, serve
):
    sql = Sql(sample_database)
    sql.run(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit, calls_made, "
        "is_valid) VALUES (1, %s, LEFT(%s, 6), 'import', 1000, 0, 1)",
        (key_hash(KEY), KEY),
    )
    served = serve(sample_database, workers=AT_ONCE)

    def run(n: int) -> requests.Response:
        return requests.post(
            served.url + "/api/import", json=body(n), headers={"X-API-Key": KEY}, timeout=120
        )

    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        responses = list(pool.map(run, range(IMPORTS)))
    outcome = Counter(
        (r.status_code, r.json().get("error", {}).get("code", "ok")) for r in responses
    )
    print(f"48 imports x 400 records, 8 at a time: {dict(outcome)}")
    assert set(outcome) <= {(200, "ok"), (503, "service_busy")}, outcome
    busy = [r for r in responses if r.status_code == 503]
    assert all(r.headers.get("Retry-After", "").isdigit() for r in busy)
    # Only the imports that did the work cost a unit (busy ones were given back).
    admitted = outcome[(200, "ok")]
    assert sql.value("SELECT calls_made FROM api_keys WHERE key_prefix = 'key_IM'") == admitted
    assert sql.value("SELECT COUNT(*) FROM articles WHERE url LIKE '%%/Shared\\_%%'") == RECORDS
    served.stop()
    assert "db_unavailable" not in served.log_text()
    sql.close()
