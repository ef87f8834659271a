"""The service's throughput and latency next to baselines, and its bulk paths: `scripts/bench`.

    scripts/bench [--seconds 10] [--warmup 3] [--workers 4] [--connections 32] [--quick]
                  [--profile F,R] [--only B2,F] [--cluster 3311,3312,3313] ...

One run, on a throw-away database (`bench_<random>`, migrated, dropped at the end):

1. The request series. Two servers, both gunicorn with the production configuration
   (`-c service/gunicorn_conf.py`, the same WEB_CONCURRENCY): the baselines (baseline_app.py here:
   B0 a bare Flask route, B1 one primary-key SELECT, B2 one single-row autocommit UPDATE, B3 the
   three statements of an admitted export and nothing else, B4 the two it runs when its key's row
   is cached; asked for with --only, B5 and B6 the same two in one CALL and prepared) and the
   service through scripts/serve
   (F `GET /api/export?limit=1` with a valid key, R a key over its quota (429), U `GET /api/usage`).
   The runs alternate, each service run right after its baseline. Each is wrk (wrk.lua here) with
   a warm-up first; both count in the checks. Then SIGTERM (every worker flushes its audit buffer)
   and the checks: audit rows == requests written, `calls_made` == F requests written.
2. Bulk (WEB_CONCURRENCY=1, so the one worker is the one measured): NDJSON export of every article
   next to the `mariadb --batch` client selecting the same columns, and one NDJSON import; rows/s,
   CPU, and the worker's peak RSS (VmHWM, reset before each).

3. With `--cluster PORTS`: R and F again with the service on a running Galera cluster
   (`scripts/galera start`), in the same run, printed next to the single server (cluster.py).

Prints a table, and saves it with the raw figures under reports/bench/ (git-ignored). Prints
figures only: the targets are reported as met or not, nothing fails on a time limit.
docs/performance.md explains the figures.

The package, by concern: seeding.py (the database), load.py (servers, wrk, CPU accounting),
profiling.py (py-spy), bulk.py (export and import), results.py (checks, ratios, targets, the
table), cli.py (the command line), instructions.py (instructions per request under valgrind,
run on its own: `python -m scripts.benchmark.instructions`). quota.py is scripts/bench_quota.py.
The throw-away database and the served instances come from the tests' harness, tests/testkit.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))  # the harness, tests/testkit.py
# The harness reads TEST_DB_*; the benchmark, like the service, honours DB_*.
for _part in ("HOST", "PORT", "USER", "PASS"):
    if f"DB_{_part}" in os.environ:
        os.environ.setdefault(f"TEST_DB_{_part}", os.environ[f"DB_{_part}"])

REPORTS = ROOT / "reports" / "bench"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
