"""Quota decisions per second through the service, next to a bare single-row UPDATE.

    .venv/bin/python scripts/bench_quota.py [--seconds 10] [--workers 4] [--connections 32]

Creates a throw-away database, starts scripts/serve (gunicorn, the production configuration),
and drives it with wrk (Debian's; --install installs it). Every metered request makes one
quota decision: an admitted one (`GET /api/export?limit=1`, which also runs the export query) and
a refused one (a spent key: the key read shows it spent, so nothing is written). Next to them,
the same machine's figure for the least a durable counter can cost: one single-row autocommit
UPDATE from Python, on one connection and on as many connections as gunicorn has workers.
Prints figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from testkit import DB_SETTINGS, fresh_database, key_hash, root_connection, start_service

LUA = """
wrk.headers["X-API-Key"] = "%s"
"""


def bare_updates(database: str, seconds: float, connections: int) -> float:
    """Single-row autocommit UPDATEs per second, from `connections` threads."""
    counts = [0] * connections
    deadline = time.monotonic() + seconds

    def loop(i: int) -> None:
        conn = root_connection(database)
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
                counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def wrk(url: str, key: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % key)
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)[1]
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)[1]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out)[1])
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "total": total,
        "non2xx": int(non2xx[1]) if non2xx else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--install",
        action="store_true",
        help="install Debian's wrk with apt-get (visible) if it is missing",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        if not args.install:
            raise SystemExit(
                "wrk (Debian's wrk) is missing. Install it with:\n  apt-get install "
                "wrk    (or pass --install to let this script do so)"
            )
        print("installing Debian's wrk (apt-get install -y wrk)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)

    with fresh_database(sample=True, prefix="bench_quota") as database:
        conn = root_connection(database)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE bench_counter (id INT PRIMARY KEY, n BIGINT NOT NULL)")
            cur.execute("INSERT INTO bench_counter VALUES (1, 0)")
            for key, limit, used in (("bqopen_key", 10**9, 0), ("bqspnt_key", 1, 1)):
                cur.execute(
                    "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit, "
                    "calls_made, last_reset, is_valid) VALUES (1, %s, LEFT(%s, 6), "
                    "'export', %s, %s, UTC_DATE(), 1)",
                    (key_hash(key), key, limit, used),
                )
        one = bare_updates(database, min(args.seconds, 5), 1)
        many = bare_updates(database, min(args.seconds, 5), args.workers)

        logs = Path(tempfile.mkdtemp(prefix="bench-quota-logs-"))
        server = start_service(
            database,
            logs / "service.log",
            workers=args.workers,
            settings=DB_SETTINGS,
            extra_env={"LOG_LEVEL": "WARNING"},
        )
        try:
            url = server.url + "/api/export?limit=1"
            warm = wrk(url, "bqopen_key", 2, args.connections)
            admitted = wrk(url, "bqopen_key", args.seconds, args.connections)
            refused = wrk(url, "bqspnt_key", args.seconds, args.connections)
        finally:
            server.stop(timeout=60)
            shutil.rmtree(logs, ignore_errors=True)
        with conn.cursor() as cur:
            cur.execute("SELECT key_prefix, calls_made FROM api_keys WHERE key_prefix LIKE 'bq%'")
            counts = {r["key_prefix"]: r["calls_made"] for r in cur.fetchall()}
        conn.close()

    print(
        f"machine: {os.cpu_count()} cores; gunicorn workers: {args.workers}; "
        f"wrk: 2 threads, {args.connections} connections, {args.seconds} s"
    )
    print(f"{'what':<46} {'per second':>11} {'p50':>9} {'p99':>9}")
    print(f"{'bare single-row UPDATE, 1 connection':<46} {one:>11,.0f}")
    print(f"{f'bare single-row UPDATE, {args.workers} connections':<46} {many:>11,.0f}")
    print(
        f"{'service: admitted (200, quota + export query)':<46} {admitted['rps']:>11,.0f} "
        f"{admitted['p50']:>9} {admitted['p99']:>9}"
    )
    print(
        f"{'service: refused (429, spent key: one read)':<46} {refused['rps']:>11,.0f} "
        f"{refused['p50']:>9} {refused['p99']:>9}"
    )
    print(
        f"admitted / bare UPDATE ({args.workers} conns): {admitted['rps'] / many:.2f}; "
        f"refused / bare UPDATE: {refused['rps'] / many:.2f}"
    )
    # Exactness during the run: every 200 was counted once, refusals not at all.
    # wrk does not count the requests still in flight when it stops (at most one per
    # connection); the server does answer them, so the counter may exceed wrk's total by that.
    sent = warm["total"] + admitted["total"]
    print(
        f"exactness: open key counted {counts['bqopen']} calls; wrk completed {sent} "
        f"(+ up to {2 * args.connections} in flight at the two stops), "
        f"{warm['non2xx'] + admitted['non2xx']} non-2xx; spent key still at "
        f"{counts['bqspnt']} after {refused['total']} refusals ({refused['non2xx']} non-2xx)"
    )
    return 0
