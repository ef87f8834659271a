"""`scripts/bench`: the command line, and the order of a run (see the package's docstring)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from testkit import fresh_database, root_connection

from . import REPORTS, log
from . import __doc__ as overview
from .bulk import bulk
from .cluster import cluster_report, cluster_series
from .load import Run, drive, start_baseline, start_server
from .profiling import profile_run
from .results import checks, machine, median_ratios, ratios, report, targets
from .seeding import Keys, seed

RUN_ORDER = ["B0", "B1", "B2", "B3", "B4", "B5", "B6", "F", "R", "U"]  # the table's order
# The order they run in: each service run right after the baseline it is compared with, so that
# a change in the machine's load (other work on it) hits both sides of a ratio alike.
SERIES = (
    ("B1", "one primary-key SELECT", "baseline", "/b1"),
    ("R", "over quota (429)", "service", "/api/export?limit=1"),
    ("B2", "one single-row UPDATE (autocommit)", "baseline", "/b2"),
    ("F", "GET /api/export?limit=1 (valid key)", "service", "/api/export?limit=1"),
    ("B4", "F's two statements (key cached), bare", "baseline", "/b4"),
    ("B5", "B4's statements in one CALL, bare", "baseline", "/b5"),
    ("B6", "B4's statements prepared, bare", "baseline", "/b6"),
    ("B3", "F's three statements, bare", "baseline", "/b3"),
    ("U", "GET /api/usage", "service", "/api/usage"),
    ("B0", "bare Flask route, no database", "baseline", "/b0"),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=overview.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per run")
    parser.add_argument("--workers", type=int, default=4, help="WEB_CONCURRENCY (all servers)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--f-keys",
        type=int,
        default=1,
        help="keys the F run spreads its requests over (default 1: one row)",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="articles for the export")
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5 s runs, 2 s warm-up, 100,000 articles, 10,000 imported",
    )
    parser.add_argument(
        "--only",
        default="B0,B1,B2,B3,B4,F,R,U,bulk",
        help="comma-separated subset of B0,B1,B2,B3,B4,B5,B6,F,R,U,bulk (to iterate on "
        "one part; the table of record runs all but B5 and B6, which run only when asked)",
    )
    parser.add_argument(
        "--profile",
        default="",
        metavar="RUNS",
        help="e.g. F,R: one more run of each under py-spy (requirements-bench.txt),"
        " after the measured ones; its figures are not in the table",
    )
    parser.add_argument(
        "--cluster",
        default="",
        metavar="PORTS",
        help="e.g. 3311,3312,3313: R and F again with the service on this Galera "
        "cluster (scripts/galera start), printed next to the single server",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="the request series this many times over, alternating as in one; each round's "
        "ratios are printed and the verdicts use their medians (on a noisy machine one run's "
        "ratios move by 0.2 and more)",
    )
    parser.add_argument("--keep-database", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 5), min(args.warmup, 2)
        args.rows, args.import_rows = min(args.rows, 100_000), min(args.import_rows, 10_000)
    if args.rounds < 1:
        parser.error("--rounds takes a count of 1 or more")
    args.only = set(args.only.split(","))
    args.profile = set(filter(None, args.profile.split(",")))
    try:
        args.cluster = [int(p) for p in args.cluster.split(",")] if args.cluster else []
    except ValueError:
        parser.error("--cluster takes the nodes' client ports, e.g. 3311,3312,3313")
    return args


def run_series(database: str, keys: Keys, args, logs: Path, results: dict) -> None:
    """The request series, then SIGTERM to both servers and the checks."""
    run_keys = {"F": keys.f, "R": [keys.r], "U": [keys.u]}
    runs: dict[str, Run] = {}
    with contextlib.ExitStack() as stop_on_error:
        # Both servers are up for the whole series (an idle one costs nothing).
        baseline = start_baseline(database, args.workers, logs, keys)
        stop_on_error.callback(baseline.stop, timeout=60)
        service = start_server(database, args.workers, logs)
        stop_on_error.callback(service.stop, timeout=60)
        servers = {"baseline": baseline, "service": service}
        per_round = []
        for number in range(1, args.rounds + 1):
            for name, what, server, path in SERIES:
                if number == 1:
                    url = servers[server].url + path
                    runs[name] = Run(name, what, url, run_keys.get(name, []))
                else:
                    runs[name].next_round()
                if name in args.only:
                    drive(servers[server], runs[name], args)
            per_round.append(ratios(table(runs)))
        if args.rounds > 1:
            results["rounds"] = per_round
        for name in args.profile & {"F", "R", "U"}:
            prof = profile_run(service, runs[name], args, REPORTS)
            if prof:
                runs[name].profiled = prof["wrk"]
                results.setdefault("profiles", {})[name] = prof
        log("SIGTERM to both servers (the service's workers flush their audit buffers)")
        baseline.stop(timeout=60)
        service.stop(timeout=60)
    results["checks"] = checks(database, keys, runs)
    results["runs"] = table(runs)  # with --rounds, the last round's


def table(runs: dict[str, Run]) -> dict:
    return {
        name: {"what": r.what, "rps": round(r.rps, 1), "measured": r.measured, "warmup": r.warmup}
        for name, r in sorted(runs.items(), key=lambda kv: RUN_ORDER.index(kv[0]))
        if r.measured
    }


def save(results: dict, text: str, stamp: str) -> None:
    (REPORTS / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (REPORTS / f"bench-{stamp}.txt").write_text(text + "\n")
    shutil.copy(REPORTS / f"bench-{stamp}.json", REPORTS / "latest.json")
    shutil.copy(REPORTS / f"bench-{stamp}.txt", REPORTS / "latest.txt")


def print_profiles(results: dict) -> None:
    for name, p in results.get("profiles", {}).items():
        print(f"\nprofile of {name} under py-spy --gil ({p['samples']} samples, {p['raw']})")
        print(
            "  where (innermost frame's package): "
            + ", ".join(f"{package} {share}%" for package, share in p["self_by_package"])
        )
        print(
            "  innermost functions: "
            + ", ".join(f"{frame} {share}%" for frame, share in p["self_top"][:10])
        )
        print("  what for (functions on the stack, share of samples):")
        for frame, share in p["inclusive_top"]:
            print(f"  {share:5.1f}%  {frame}")


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    REPORTS.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    results: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "scripts/bench " + " ".join(sys.argv[1:]),
        "args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "runs": {},
    }
    with fresh_database(prefix="bench", keep=args.keep_database) as database:
        log(f"database {database}; logs in {logs}")
        conn = root_connection(database)
        keys = seed(conn, args.f_keys)
        conn.close()
        if args.only & {name for name, *_ in SERIES}:
            run_series(database, keys, args, logs, results)
        if args.cluster:
            results["cluster"] = cluster_series(args.cluster, args, logs)
        if "bulk" in args.only:
            results["bulk"] = bulk(database, keys, args, logs)
    results["ratios"] = (
        median_ratios(results["rounds"]) if "rounds" in results else ratios(results["runs"])
    )
    results["targets"] = targets(results)
    results["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    text = report(results)
    if "cluster" in results:
        text += "\n" + cluster_report(results)
    print(text)
    save(results, text, stamp)
    print_profiles(results)
    shutil.rmtree(logs, ignore_errors=True)
    print(f"\nsaved: reports/bench/bench-{stamp}.json and .txt")
    return 0
