"""The daily quota on a three-node Galera cluster: three instances, each writing through its own
node, and a burst at one key. Galera's certification lets the first commit of a row win on every
node and aborts the others with a deadlock error (1213), which the service retries; so the quota
stays exact although every node accepts writes."""

from __future__ import annotations

from collections import Counter

import pytest
from galera_cluster import add_key, burst, synced_rows, synced_value

from testkit import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster"), pytest.mark.e2e]

KEY = "key_CLU050"
LIMIT = 50
TOTAL = 600


def audit_counts(port: int, database: str, key_id: int) -> dict[int, int]:
    rows = synced_rows(
        port,
        database,
        "SELECT response_code, COUNT(*) AS n FROM audit_logs WHERE key_id = %s "
        "GROUP BY response_code",
        (key_id,),
    )
    return {row["response_code"]: row["n"] for row in rows}


def test_600_requests_through_three_nodes_admit_exactly_50(galera, cluster_db, instances):
    key_id = add_key(galera.ports[0], cluster_db, KEY, LIMIT)
    served = [instances(cluster_db, node) for node in range(3)]
    before = [galera.status(n) for n in range(3)]
    responses = burst([s.url for s in served], KEY, TOTAL)
    after = [galera.status(n) for n in range(3)]
    conflicts = sum(
        int(a[name]) - int(b[name])
        for a, b in zip(after, before, strict=True)
        for name in ("wsrep_local_cert_failures", "wsrep_local_bf_aborts")
    )
    print(f"burst: {dict(Counter(r.status_code for r in responses))}, "
          f"certification conflicts and aborts on the nodes: {conflicts}")

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: LIMIT, 429: TOTAL - LIMIT}, statuses
    used = sorted(int(r.headers["X-RateLimit-Used"]) for r in responses if r.status_code == 200)
    assert used == list(range(1, LIMIT + 1)), "every admitted request saw its own unit"
    by_instance = Counter(r.url.split("/api")[0] for r in responses)
    assert len(by_instance) == 3 and min(by_instance.values()) == TOTAL // 3
    for port in galera.ports:
        count = synced_value(port, cluster_db, "SELECT calls_made FROM api_keys WHERE id = %s",
                             (key_id,))
        assert count == LIMIT, f"node {port}: calls_made {count}"
        wait_until(lambda port=port: audit_counts(port, cluster_db, key_id)
                   == {200: LIMIT, 429: TOTAL - LIMIT}, timeout=20)
