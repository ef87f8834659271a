"""`scripts/bench --cluster PORTS`: R and F again, with the service on a Galera cluster.

In the same run as the single-server series, so that both sides of the comparison meet the same
machine: a throw-away database created and migrated through the cluster's first node, the same
keys and articles, one instance of the service (same gunicorn configuration, same WEB_CONCURRENCY)
given every node in DB_HOSTS with the first node first, and the same wrk runs (R, then F). Then
SIGTERM and the same checks: `calls_made` == F requests written, audit rows == requests written.
Start the cluster with `scripts/galera start` first (GALERA_PORTS as given here).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from service import migrations
from service.cli import quote_identifier
from testkit import node_connection

from . import log
from .load import Run, drive, start_server
from .seeding import SPENT_LIMIT, seed


def cluster_series(ports: list[int], args, logs: Path) -> dict:
    database = f"bench_cluster_{uuid.uuid4().hex[:10]}"
    admin = node_connection(ports[0])
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE " + quote_identifier(database) + " CHARACTER SET utf8mb4")
    try:
        conn = node_connection(ports[0], database)
        migrations.migrate(conn, log=lambda _line: None)
        keys = seed(conn, args.f_keys)
        conn.close()
        log(
            f"cluster: database {database} on nodes {ports} (the service writes through {ports[0]})"
        )
        hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
        service = start_server(
            database, args.workers, logs, DB_HOST="127.0.0.1", DB_PORT=str(ports[0]), DB_HOSTS=hosts
        )
        runs: dict[str, Run] = {}
        try:
            for name, what, run_keys in (
                ("R", "over quota (429), on the cluster", [keys.r]),
                ("F", "GET /api/export?limit=1, on the cluster", keys.f),
            ):
                runs[name] = drive(
                    service, Run(name, what, service.url + "/api/export?limit=1", run_keys), args
                )
        finally:
            log("cluster: SIGTERM to the service (its workers flush their audit buffers)")
            service.stop(timeout=60)
        return {
            "ports": ports,
            "runs": {
                name: {
                    "what": r.what,
                    "rps": round(r.rps, 1),
                    "measured": r.measured,
                    "warmup": r.warmup,
                }
                for name, r in runs.items()
            },
            "checks": _checks(ports[0], database, keys, runs),
        }
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS " + quote_identifier(database))
        admin.close()


def _checks(port: int, database: str, keys, runs: dict[str, Run]) -> dict:
    conn = node_connection(port, database)
    with conn.cursor() as cur:
        # Read after every writeset already ordered by the cluster has been applied here.
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SELECT label, calls_made FROM api_keys")
        calls = {r["label"]: r["calls_made"] for r in cur.fetchall()}
        cur.execute("SELECT response_code, COUNT(*) AS n FROM audit_logs GROUP BY response_code")
        audit = {str(r["response_code"]): r["n"] for r in cur.fetchall()}
    conn.close()
    f_sent, r_sent = runs["F"].sent, runs["R"].sent
    f_calls = sum(calls[f"F{i + 1}"] for i in range(len(keys.f)))
    return {
        "f_sent": f_sent,
        "f_calls_made": f_calls,
        "r_sent": r_sent,
        "audit": audit,
        "quota_exact": f_calls == f_sent and calls["R"] == SPENT_LIMIT,
        "audit_complete": audit == {"200": f_sent, "429": r_sent},
    }


def cluster_report(results: dict) -> str:
    """F and R on one server and on the cluster, side by side."""
    cluster = results["cluster"]
    single = results["runs"]
    lines = [
        "",
        f"single server next to a three-node Galera cluster (nodes {cluster['ports']}, "
        "the service writing through the first; same run, same machine):",
        f"{'run':<4} {'':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}",
    ]
    for name in ("F", "R"):
        for where, run in (("single", single.get(name)), ("cluster", cluster["runs"].get(name))):
            if not run:
                continue
            lat = run["measured"]["latency_us"]
            lines.append(
                f"{name:<4} {where:<8} {run['rps']:>8.1f} {lat['p50'] / 1000:>7.2f} "
                f"{lat['p99'] / 1000:>7.2f}"
            )
        if single.get(name) and cluster["runs"].get(name):
            ratio = cluster["runs"][name]["rps"] / single[name]["rps"]
            lines.append(f"{name:<4} cluster/single {ratio:.2f}")
    c = cluster["checks"]
    lines.append(
        f"cluster checks: quota exact {c['quota_exact']} (F sent {c['f_sent']}, "
        f"calls_made {c['f_calls_made']}), audit complete {c['audit_complete']} "
        f"({c['audit']})"
    )
    return "\n".join(lines)
