"""Instructions per request: the CPU work of one request, counted instead of timed.

    .venv/bin/python -m scripts.benchmark.instructions [--without log,audit] [R U F B0 B1]

wrk's ratios move by ±0.1 from one run to the next on a shared machine; a change worth a few per
cent of a request's CPU is lost in that. This counts the instructions the worker process executes
(valgrind's callgrind, Debian's `valgrind`), which do not depend on the machine's load: each series
runs twice in a child process, 300 and 1,300 requests after a 300-request warm-up, through the
WSGI app in-process (no gunicorn, no socket), and the difference over 1,000 requests is printed.
Start-up, the database's creation and the warm-up cancel out. The database server's work is not
counted (it is another process), the audit writer thread's is.

The series are those of `scripts/bench`: R (a key over its quota), U (`/api/usage`), F (an admitted
`/api/export?limit=1`), B0 and B1 (the baselines' bare route and primary-key SELECT). Two
children run at a time. About 2.5 minutes of CPU per series.

`--without log` (the request's log line), `--without audit` (its audit row) or both count the
service's series with that part switched off: what the part costs, by difference. Never a way to
run the service; only this measurement switches them off.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from . import ROOT

SERIES = {
    "R": ("service", "/api/export?limit=1"),
    "U": ("service", "/api/usage"),
    "F": ("service", "/api/export?limit=1"),
    "B0": ("baseline", "/b0"),
    "B1": ("baseline", "/b1"),
}
WARM_UP, SHORT, LONG = 300, 300, 1300
_COLLECTED = re.compile(r"Collected : (\d+)")


def child(series: str, requests: int, warm_up: int = WARM_UP, without: str = "") -> Counter:
    """Serve `warm_up` then `requests` requests of `series` in-process (what valgrind counts);
    returns how many got each status."""
    from werkzeug.test import EnvironBuilder

    from testkit import BASE_SETTINGS, DB_SETTINGS, TEST_SECRET, fresh_database, root_connection

    from .seeding import seed

    kind, path = SERIES[series]
    with fresh_database(prefix="instr") as name:
        conn = root_connection(name)
        keys = seed(conn, 1)
        conn.close()
        headers = {}
        if kind == "service":
            from service import create_app

            settings = {**BASE_SETTINGS, **DB_SETTINGS, "DB_NAME": name}
            app = create_app({**settings, "KEY_HASH_SECRET": TEST_SECRET})
            headers = {"X-API-Key": {"R": keys.r, "U": keys.u, "F": keys.f[0]}[series]}
            if "log" in without.split(","):
                logging.getLogger("service.request").disabled = True
            if "audit" in without.split(","):
                app.extensions["audit"].record = lambda row: None
        else:
            # Read by baseline_app when it is imported, as under gunicorn.
            os.environ.update(DB_NAME=name, BENCH_B1_ID=str(keys.ids["B1"]))
            from .baseline_app import app
        environ = EnvironBuilder(path=path, headers=headers).get_environ()

        statuses: Counter = Counter()

        def start_response(status: str, *_) -> None:
            statuses[int(status.split()[0])] += 1

        for _ in range(warm_up + requests):
            body = app({**environ, "wsgi.input": io.BytesIO(b"")}, start_response)
            for _ in body:
                pass
            body.close()
        if kind == "service":
            app.extensions["audit"].close(timeout=5)
        return statuses


def count(series: str, requests: int, without: str) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += ["-m", "scripts.benchmark.instructions", "--child", series, str(requests), without]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{series}: the child failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], int(argv[2]), without=argv[3])
        return 0
    without = ""
    if argv[:1] == ["--without"]:
        without, argv = argv[1], argv[2:]
        if not set(without.split(",")) <= {"log", "audit"}:
            print("--without takes log, audit or log,audit", file=sys.stderr)
            return 2
    if shutil.which("valgrind") is None:
        print("needs valgrind (Debian's valgrind: apt-get install valgrind)", file=sys.stderr)
        return 2
    wanted = argv or ["R", "U", "F", "B0", "B1"]
    unknown = [s for s in wanted if s not in SERIES]
    if unknown:
        print(f"unknown series {unknown}; known: {', '.join(SERIES)}", file=sys.stderr)
        return 2
    jobs = [(s, n) for s in wanted for n in (SHORT, LONG)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = dict(zip(jobs, pool.map(lambda job: count(*job, without), jobs), strict=True))
    for series in wanted:
        per_request = (counted[series, LONG] - counted[series, SHORT]) / (LONG - SHORT)
        shown = f" (without {without})" if without else ""
        print(f"{series:3s} {per_request:>12,.0f} instructions per request{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
