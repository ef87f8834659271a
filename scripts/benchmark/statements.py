"""What each statement of the request path costs, on one connection, with nothing around it.

    .venv/bin/python -m scripts.benchmark.statements [--count 4000] [--repeat 3]

The request series of `scripts/bench` say what a whole request costs; this says what its
statements cost MariaDB (CPU of `mariadbd` from /proc) and the client (this process's CPU: PyMySQL
and the kernel's socket work), each run `--count` times in a row on one autocommit connection to a
throw-away database seeded as the benchmark's, after a warm-up. Printed per statement: the median
over `--repeat` passes, in microseconds. Nothing else should run on the machine meanwhile; the
server's CPU is read in clock ticks, so passes shorter than a few seconds are coarse.

Rows, in order: the baselines' statements (B1's SELECT, B2's UPDATE), the service's (the key by
hash, the quota UPDATE, the JSON page), the quota UPDATE without its owner check (the one part
that reads another table), and an admitted export's two statements as the service sends them
(two round trips) next to the same two in one round trip through a stored procedure, created in
the throw-away database only (seeding.py): what "one round trip for the admission and the page"
would save; last, the quota UPDATE and the page as prepared statements (`EXECUTE ... USING`,
MariaDB only; seeding.Prepared): what the server's parsing of each costs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pymysql
import pymysql.cursors

from service.repositories.api_keys import CONSUME_QUOTA, FIND_BY_HASH
from service.repositories.articles import JSON_OBJECTS
from testkit import fresh_database, key_hash, root_connection

from .baseline_app import SELECT_ONE, UPDATE_ONE
from .load import cpu_seconds, mariadb_pid
from .seeding import PREPARED_ADMIT, PREPARED_PAGE, PROCEDURE_CALL, prepare, seed

OWNER_CHECK = (
    "AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = api_keys.user_id AND u.is_active = 0)"
)
# Built from the service's SQL by text: fail loudly when that text moves, rather than measure a
# statement that is not the service's.
assert OWNER_CHECK in CONSUME_QUOTA, "the quota UPDATE's owner check changed: update OWNER_CHECK"


def measure(work: Callable[[], None], count: int, repeat: int, server_pid: int) -> tuple[int, int]:
    """(server µs, client µs) per call: medians over `repeat` passes of `count` calls."""
    for _ in range(min(count, 200)):
        work()
    servers, clients = [], []
    for _ in range(repeat):
        server, client = cpu_seconds(server_pid), time.process_time()
        for _ in range(count):
            work()
        clients.append((time.process_time() - client) / count)
        servers.append((cpu_seconds(server_pid) - server) / count)
    return round(1e6 * statistics.median(servers)), round(1e6 * statistics.median(clients))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark.statements")
    parser.add_argument("--count", type=int, default=4000, help="calls per pass")
    parser.add_argument("--repeat", type=int, default=3, help="passes (the median is printed)")
    args = parser.parse_args()
    server_pid = mariadb_pid()
    if server_pid is None:
        raise SystemExit("no local mariadbd process: its CPU is what this measures")
    with fresh_database(prefix="stmts") as name:
        conn = root_connection(name)
        keys = seed(conn, 2)
        cur = conn.cursor(pymysql.cursors.Cursor)
        today = datetime.now(UTC).date()
        consume = {"key_id": keys.ids["F1"], "today": today, "scope": "export"}
        consume_other = {"key_id": keys.ids["F2"], "today": today, "scope": "export"}
        page = {"before_id": None, "since": None, "limit": 2}

        def run(sql: str, params) -> Callable[[], None]:
            def work() -> None:
                cur.execute(sql, params)
                cur.fetchall()

            return work

        def pair(admit: str, admit_args, page_sql: str, page_args) -> Callable[[], None]:
            def work() -> None:
                cur.execute(admit, admit_args)
                cur.execute(page_sql, page_args)
                cur.fetchall()

            return work

        def one_call() -> None:
            cur.execute(PROCEDURE_CALL, {**consume_other, **page})
            cur.fetchall()
            while cur.nextset():
                cur.fetchall()

        prepare(cur)
        admit_args = PREPARED_ADMIT.args(consume)
        page_args = PREPARED_PAGE.args(page)

        rows = [
            ("B1: SELECT by primary key", run(SELECT_ONE, (keys.ids["B1"],))),
            ("B2: UPDATE calls_made + 1", run(UPDATE_ONE, (keys.ids["B2"],))),
            ("the key by hash (FIND_BY_HASH)", run(FIND_BY_HASH, {"key_hash": key_hash(keys.b3)})),
            ("the quota UPDATE (CONSUME_QUOTA)", run(CONSUME_QUOTA, consume)),
            (
                "  the same without the owner check",
                run(CONSUME_QUOTA.replace(OWNER_CHECK, ""), consume_other),
            ),
            ("the JSON page (JSON_OBJECTS, 2 rows)", run(JSON_OBJECTS, page)),
            ("admission + page: two round trips", pair(CONSUME_QUOTA, consume, JSON_OBJECTS, page)),
            ("admission + page: one CALL", one_call),
            ("the quota UPDATE prepared (EXECUTE)", run(PREPARED_ADMIT.execute, admit_args)),
            ("the JSON page prepared (EXECUTE)", run(PREPARED_PAGE.execute, page_args)),
            (
                "admission + page: prepared, two trips",
                pair(PREPARED_ADMIT.execute, admit_args, PREPARED_PAGE.execute, page_args),
            ),
        ]
        print(f"{'statement':<38} {'MariaDB µs':>10} {'client µs':>10}  (per call)")
        for label, work in rows:
            server, client = measure(work, args.count, args.repeat, server_pid)
            print(f"{label:<38} {server:>10} {client:>10}", flush=True)
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
