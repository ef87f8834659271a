"""The request series' machinery: the two servers, wrk, and where the CPU went during a run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from testkit import DB_SETTINGS, Served, key_hash, start_service

from . import log
from .seeding import Keys

LUA = Path(__file__).resolve().parent / "wrk.lua"


def start_server(database: str, workers: int, logs: Path, **extra: str) -> Served:
    """The service through scripts/serve."""
    return start_service(
        database, logs / "service.log", workers=workers, settings=DB_SETTINGS, extra_env=extra
    )


def start_baseline(database: str, workers: int, logs: Path, keys: Keys) -> Served:
    """The baseline app under the service's gunicorn configuration."""
    return start_service(
        database,
        logs / "baseline.log",
        workers=workers,
        settings=DB_SETTINGS,
        extra_env={
            "BENCH_B1_ID": keys.ids["B1"],
            "BENCH_B2_ID": keys.ids["B2"],
            "BENCH_B3_HASH": key_hash(keys.b3),
            "BENCH_B4_ID": keys.ids["B4"],
            "BENCH_B5_ID": keys.ids["B5"],
            "BENCH_B6_ID": keys.ids["B6"],
        },
        command=[
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "service/gunicorn_conf.py",
            "scripts.benchmark.baseline_app:app",
        ],
        ready_path="/b0",
    )


@dataclass
class Run:
    name: str
    what: str
    url: str
    keys: list[str]
    measured: dict | None = None
    warmup: dict | None = None
    profiled: dict | None = None  # an extra run under py-spy: not measured, but counted
    earlier: list[dict] = field(default_factory=list)  # earlier rounds' wrk runs (--rounds)

    @property
    def sent(self) -> int:
        runs = (self.measured, self.warmup, self.profiled, *self.earlier)
        return sum(r["sent"] for r in runs if r)

    def next_round(self) -> None:
        """Keep this round's wrk runs for the counts (what was sent); the next round measures."""
        self.earlier += [r for r in (self.measured, self.warmup) if r]
        self.measured = self.warmup = None

    @property
    def rps(self) -> float:
        m = self.measured
        return m["requests"] / (m["duration_us"] / 1e6)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float, float]:
    """(busy, total, steal) CPU seconds of the whole machine since boot, from /proc/stat. Steal is
    time the hypervisor ran something else on this VM's CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle, steal = values[3] + values[4], values[7] if len(values) > 7 else 0  # idle + iowait
    return (sum(values) - idle - steal) / CLK_TCK, sum(values) / CLK_TCK, steal / CLK_TCK


def mariadb_pid() -> int | None:
    for stat in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if stat.read_text().strip() in ("mariadbd", "mysqld"):
                return int(stat.parent.name)
    return None


class CpuMeter:
    """Where the machine's CPU went during one wrk run: the server (gunicorn master and workers),
    MariaDB, wrk itself and everything else (the kernel's share is in each process's stime)."""

    def __init__(self, server: Served | None):
        self.pids = [server.process.pid, *server.workers()] if server else []
        self.db_pid = mariadb_pid()

    def __enter__(self) -> CpuMeter:
        self.app0 = sum(cpu_seconds(p) for p in self.pids)
        self.db0 = cpu_seconds(self.db_pid) if self.db_pid else 0.0
        self.wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.busy0, self.total0, self.steal0 = machine_cpu()
        return self

    def __exit__(self, *exc) -> None:
        busy1, total1, steal1 = machine_cpu()
        wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.app = sum(cpu_seconds(p) for p in self.pids) - self.app0
        self.db = (cpu_seconds(self.db_pid) if self.db_pid else 0.0) - self.db0
        self.wrk = (wrk1.ru_utime + wrk1.ru_stime) - (self.wrk0.ru_utime + self.wrk0.ru_stime)
        self.busy = busy1 - self.busy0
        self.total = total1 - self.total0
        self.steal = steal1 - self.steal0

    def per_request(self, requests: int) -> dict:
        n = max(requests, 1)
        return {
            "app_ms": round(1000 * self.app / n, 3),
            "db_ms": round(1000 * self.db / n, 3),
            "wrk_ms": round(1000 * self.wrk / n, 3),
            "other_ms": round(1000 * (self.busy - self.app - self.db - self.wrk) / n, 3),
            "machine_busy_pct": round(100 * self.busy / self.total, 1) if self.total else None,
            "steal_pct": round(100 * self.steal / self.total, 1) if self.total else None,
        }


def wrk(url: str, keys: list[str], seconds: float, args, server: Served | None = None) -> dict:
    env = {**os.environ, "BENCH_KEYS": ",".join(keys)}
    argv = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
    ]
    with CpuMeter(server) as meter:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^BENCH_JSON (.*)$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    result = json.loads(match[1])
    result["cpu_per_request"] = meter.per_request(result["requests"])
    return result


def drained(server: Served) -> None:
    """Wait until the server has taken every connection wrk left behind.

    wrk stops with up to one request per connection written but unanswered; the server still
    answers it (and meters and audits it). One answered request on a fresh connection means every
    connection queued before it has been accepted by a worker (the accept queue is FIFO), and a
    worker finishes the request it has accepted even on SIGTERM: so no written request is lost
    when the server is stopped next, and none spills into the next run's timing."""
    server.wait_ready()


def drive(server: Served, run: Run, args) -> Run:
    log(f"{run.name}: {args.warmup} s warm-up, {args.seconds} s measured ({run.url})")
    if args.warmup > 0:
        run.warmup = wrk(run.url, run.keys, args.warmup, args, server)
        drained(server)
    run.measured = wrk(run.url, run.keys, args.seconds, args, server)
    drained(server)
    return run
