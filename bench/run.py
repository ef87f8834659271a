"""The service's throughput and latency next to baselines, and its bulk paths: `scripts/bench`.

    scripts/bench [--seconds 10] [--warmup 3] [--workers 4] [--connections 32] [--quick]
                  [--profile F,R] [--only B2,F] ...

One run, on a throw-away database (`bench_<random>`, migrated, dropped at the end):

1. The request series. Two servers, both gunicorn with the production configuration
   (`-c service/gunicorn_conf.py`, the same WEB_CONCURRENCY): the baselines (bench/baseline_app.py:
   B0 a bare Flask route, B1 one primary-key SELECT, B2 one single-row autocommit UPDATE, B3 the
   three statements of an admitted export and nothing else) and the service through scripts/serve
   (F `GET /api/export?limit=1` with a valid key, R a key over its quota (429), U `GET /api/usage`).
   The runs alternate, each service run right after its baseline. Each is wrk (bench/wrk.lua) with
   a warm-up first; both count in the checks. Then SIGTERM (every worker flushes its audit buffer)
   and the checks: audit rows == requests written, `calls_made` == F requests written.
2. Bulk (WEB_CONCURRENCY=1, so the one worker is the one measured): NDJSON export of every article
   next to the `mariadb --batch` client selecting the same columns, and one NDJSON import; rows/s,
   CPU, and the worker's peak RSS (VmHWM, reset before each).

Prints a table, and saves it with the raw figures under reports/bench/ (git-ignored). Prints
figures only: the targets are reported as met or not, nothing fails on a time limit.
docs/performance.md explains the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pymysql
import pymysql.cursors

from service import migrations
from service.cli import quote_identifier

ROOT = Path(__file__).resolve().parent.parent

DB = {
    "host": os.environ.get("DB_HOST", "127.0.0.1"),
    "port": int(os.environ.get("DB_PORT", "3306")),
    "user": os.environ.get("DB_USER", "root"),
    "password": os.environ.get("DB_PASS", ""),
}
REPORTS = ROOT / "reports" / "bench"
LUA = ROOT / "bench" / "wrk.lua"
HIGH_LIMIT = 100_000_000
RUN_ORDER = ["B0", "B1", "B2", "B3", "F", "R", "U"]  # the table's order
SPENT_LIMIT = 5  # the R key: limit 5, 5 calls made today, so every request is refused


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def connect(database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        **DB, database=database, autocommit=True, charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The database


@dataclass
class Keys:
    f: list[str]
    r: str
    u: str
    bulk: str
    b3: str
    ids: dict[str, int] = field(default_factory=dict)  # label -> api_keys.id


def new_key() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "wk_" + "".join(secrets.choice(alphabet) for _ in range(32))


def seed(conn: pymysql.Connection, f_keys: int) -> Keys:
    """A user, the keys of each run (plus two rows for B1/B2) and 1,000 articles."""
    keys = Keys(f=[new_key() for _ in range(f_keys)], r=new_key(), u=new_key(), bulk=new_key(),
                b3=new_key())
    rows = [(f"F{i + 1}", k, "export", HIGH_LIMIT, 0) for i, k in enumerate(keys.f)]
    rows += [
        ("R", keys.r, "export", SPENT_LIMIT, SPENT_LIMIT),
        ("U", keys.u, "export", HIGH_LIMIT, 0),
        ("BULK", keys.bulk, "export,import", HIGH_LIMIT, 0),
        ("B1", new_key(), "export", HIGH_LIMIT, 0),
        ("B2", new_key(), "export", HIGH_LIMIT, 0),
        ("B3", keys.b3, "export", HIGH_LIMIT, 0),
    ]
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (id, username, email, is_active) "
            "VALUES (1, 'bench', 'bench@example.org', 1)"
        )
        for label, key, scopes, limit, used in rows:
            cur.execute(
                "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, label, rate_limit, "
                "calls_made, last_reset, is_valid, created_at) VALUES (1, SHA2(%s, 256), "
                "LEFT(%s, 6), %s, %s, %s, %s, UTC_DATE(), 1, UTC_TIMESTAMP())",
                (key, key, scopes, label, limit, used),
            )
            keys.ids[label] = cur.lastrowid
    generate_articles(conn, 1000, first=1)
    return keys


def generate_articles(conn: pymysql.Connection, count: int, *, first: int) -> float:
    """`count` articles numbered from `first`, ~300-byte summaries; INSERT ... SELECT from the
    Sequence engine in chunks. Returns the seconds it took."""
    started = time.monotonic()
    chunk = 200_000
    with conn.cursor() as cur:
        for start in range(first, first + count, chunk):
            end = min(start + chunk, first + count) - 1
            cur.execute(
                "INSERT INTO articles (title, url, language, summary, updated_at) "
                "SELECT CONCAT('Article ', seq), "
                "CONCAT('https://en.wikipedia.org/wiki/Bench_article_', seq), "
                "ELT(1 + seq MOD 4, 'en', 'de', 'fr', 'zh-hans'), "
                "RPAD(CONCAT('Article ', seq, ' is a benchmark article. '), 300, "
                "'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. '), "
                "'2024-01-01' + INTERVAL seq SECOND "
                f"FROM seq_{start}_to_{end}"
            )
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# Servers: gunicorn with the service's configuration, for the service and for the baselines


class Server:
    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path):
        self.name = name
        self.port = int(env["PORT"])
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 30) -> None:
        self.ready_path = path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                status, _ = http_get(self.port, path)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s; see {self.log_path}")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()]

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a graceful stop: workers flush their audit buffers), then wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {timeout} s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


def http_get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def server_env(database: str, port: int, workers: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "BENCH_"))}
    env.update(
        DB_HOST=DB["host"], DB_PORT=str(DB["port"]), DB_USER=DB["user"], DB_PASS=DB["password"],
        DB_NAME=database, PORT=str(port), BIND_HOST="127.0.0.1", WEB_CONCURRENCY=str(workers),
        # scripts/serve runs the python first on PATH: this venv's.
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    )
    env.update(extra)
    return env


def start_service(database: str, workers: int, logs: Path, **extra: str) -> Server:
    env = server_env(database, free_port(), workers, **extra)
    server = Server("service", [str(ROOT / "scripts" / "serve")], env, logs / "service.log")
    server.wait_ready("/health")
    return server


def start_baseline(database: str, workers: int, logs: Path, keys: Keys) -> Server:
    env = server_env(
        database, free_port(), workers,
        BENCH_B1_ID=str(keys.ids["B1"]), BENCH_B2_ID=str(keys.ids["B2"]),
        BENCH_B3_HASH=hashlib.sha256(keys.b3.encode()).hexdigest(),
    )
    argv = [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn_conf.py",
            "bench.baseline_app:app"]
    server = Server("baseline", argv, env, logs / "baseline.log")
    server.wait_ready("/b0")
    return server


# ---------------------------------------------------------------------------------------------
# wrk


@dataclass
class Run:
    name: str
    what: str
    url: str
    keys: list[str]
    measured: dict | None = None
    warmup: dict | None = None
    profiled: dict | None = None  # an extra run under py-spy: not measured, but counted

    @property
    def sent(self) -> int:
        return sum(r["sent"] for r in (self.measured, self.warmup, self.profiled) if r)

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

    def __init__(self, server: Server | None):
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


def wrk(url: str, keys: list[str], seconds: float, args, server: Server | None = None) -> dict:
    env = {**os.environ, "BENCH_KEYS": ",".join(keys)}
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
            "--timeout", "5s", "-s", str(LUA), url]
    with CpuMeter(server) as meter:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^BENCH_JSON (.*)$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    result = json.loads(match[1])
    result["cpu_per_request"] = meter.per_request(result["requests"])
    return result


def drained(server: Server) -> None:
    """Wait until the server has taken every connection wrk left behind.

    wrk stops with up to one request per connection written but unanswered; the server still
    answers it (and meters and audits it). One answered request on a fresh connection means every
    connection queued before it has been accepted by a worker (the accept queue is FIFO), and a
    worker finishes the request it has accepted even on SIGTERM: so no written request is lost
    when the server is stopped next, and none spills into the next run's timing."""
    server.wait_ready(server.ready_path)


def drive(server: Server, run: Run, args) -> Run:
    log(f"{run.name}: {args.warmup} s warm-up, {args.seconds} s measured ({run.url})")
    if args.warmup > 0:
        run.warmup = wrk(run.url, run.keys, args.warmup, args, server)
        drained(server)
    run.measured = wrk(run.url, run.keys, args.seconds, args, server)
    drained(server)
    return run


def profile_run(server: Server, run: Run, args, out: Path) -> dict:
    """The same wrk run again under py-spy (every worker sampled): collapsed stacks + summary."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        log("py-spy is not installed (pip install -r requirements-bench.txt): no profile")
        return {}
    raw = out / f"profile-{run.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.txt"
    duration = int(args.seconds) + 1
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(server.process.pid), "--subprocesses", "--format", "raw",
         "--rate", "200", "--gil", "--duration", str(duration), "--output", str(raw),
         "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    log(f"{run.name}: profiled run ({args.seconds} s) under py-spy")
    result = wrk(run.url, run.keys, args.seconds, args)
    drained(server)
    spy.wait(timeout=60)
    summary = summarize_profile(raw) if raw.exists() else {}
    return {"wrk": result, "raw": str(raw.relative_to(ROOT)), **summary}


# "function (/path/to/site-packages/pkg/file.py:123)" -> function, "pkg/file.py"
_FRAME = re.compile(r"(.*) \((?:.*/(?:site-packages|lib/python3\.\d+|main)/)?(.*?)(?::\d+)?\)$")
PACKAGES = ("service", "pymysql", "flask", "werkzeug", "marshmallow", "gunicorn", "logging",
            "json", "threading", "queue", "socket", "uuid", "re", "datetime")


def summarize_profile(raw: Path, top: int = 30) -> dict:
    """From py-spy's collapsed stacks: the share of samples by package of the innermost frame
    (where the time is spent), and by function anywhere on the stack (what it is spent for),
    leaving out the frames on (nearly) every stack, gunicorn's own loop."""
    by_package: dict[str, int] = {}
    innermost: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match and not frame.startswith("process "):
                frames.append((match[1], match[2]))
        if not frames:
            continue
        n = int(count)
        total += n
        path = frames[-1][1]
        package = next((p for p in PACKAGES if path.startswith((f"{p}/", f"{p}.py"))), "other")
        by_package[package] = by_package.get(package, 0) + n
        leaf = f"{frames[-1][0]} ({path})"
        innermost[leaf] = innermost.get(leaf, 0) + n
        for name in {f"{func} ({path})" for func, path in frames}:
            inclusive[name] = inclusive.get(name, 0) + n

    def ranked(counts: dict[str, int], limit: int) -> list[list]:
        best = sorted(counts.items(), key=lambda kv: -kv[1])
        return [[name, round(100 * n / total, 1)] for name, n in best if n < 0.9 * total][:limit]

    return {"samples": total, "self_by_package": ranked(by_package, len(PACKAGES) + 1),
            "self_top": ranked(innermost, 15), "inclusive_top": ranked(inclusive, top)}


# ---------------------------------------------------------------------------------------------
# Bulk paths


def vm_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the worker is gone (killed by gunicorn's timeout)
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0; needs ptrace rights)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Cpu:
    """CPU seconds the worker and MariaDB use from now until used() is called."""

    def __init__(self, worker: int):
        self.worker, self.db = worker, mariadb_pid()
        self.start = (cpu_seconds(worker), cpu_seconds(self.db) if self.db else 0.0)

    def used(self) -> dict:
        worker = cpu_seconds(self.worker) - self.start[0]
        db = (cpu_seconds(self.db) if self.db else 0.0) - self.start[1]
        return {"worker_cpu_s": round(worker, 2), "db_cpu_s": round(db, 2)}


def client_export(database: str) -> dict:
    """The `mariadb --batch` client selecting the export's columns, output discarded."""
    argv = ["mariadb", "--batch", "--protocol=tcp", "-h", DB["host"], "-P", str(DB["port"]),
            "-u", DB["user"], database, "-e",
            "SELECT id,title,url,language,summary,updated_at FROM articles ORDER BY id DESC"]
    env = {**os.environ, "MYSQL_PWD": DB["password"]}
    db_pid = mariadb_pid()
    db_start = cpu_seconds(db_pid) if db_pid else 0.0
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE)
    lines = nbytes = 0
    while chunk := proc.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
        nbytes += len(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    db = cpu_seconds(db_pid) - db_start if db_pid else 0.0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the mariadb client failed")
    proc.returncode = 0
    rows = lines - 1  # the header line
    return {"rows": rows, "bytes": nbytes, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds),
            "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "db_cpu_s": round(db, 2)}


def service_export(server: Server, key: str) -> dict:
    """Stream `GET /api/export?format=ndjson` (no limit: every row), counting lines."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    started = time.monotonic()
    conn.request("GET", "/api/export?format=ndjson", headers={"X-API-Key": key})
    response = conn.getresponse()
    first_byte = time.monotonic() - started
    lines = nbytes = 0
    complete = True
    try:
        while chunk := response.read(1 << 20):
            lines += chunk.count(b"\n")
            nbytes += len(chunk)
    except (http.client.IncompleteRead, OSError) as exc:
        # e.g. gunicorn's timeout: a sync worker streaming longer than it is killed mid-stream.
        complete = False
        if isinstance(exc, http.client.IncompleteRead):
            lines += exc.partial.count(b"\n")
            nbytes += len(exc.partial)
        log(f"bulk: the export stream broke after {lines:,} rows ({type(exc).__name__})")
    seconds = time.monotonic() - started
    conn.close()
    return {"status": response.status, "rows": lines, "bytes": nbytes, "complete": complete,
            "seconds": round(seconds, 3), "first_byte_s": round(first_byte, 3),
            "rows_per_s": round(lines / seconds)}


def ndjson_body(count: int) -> bytes:
    lines = []
    summary = ("Imported benchmark article. " * 12)[:300]
    for i in range(count):
        lines.append(json.dumps({
            "title": f"Imported article {i}",
            "url": f"https://de.wikipedia.org/wiki/Import_{i}",
            "language": "de",
            "summary": f"{i} {summary}",
            "updated_at": "2025-06-01T12:00:00Z",
        }))
    return ("\n".join(lines) + "\n").encode()


def service_import(server: Server, key: str, body: bytes) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    started = time.monotonic()
    result: dict = {"bytes": len(body)}
    try:
        conn.request("POST", "/api/import", body=body,
                     headers={"X-API-Key": key, "Content-Type": "application/x-ndjson"})
        response = conn.getresponse()
        payload = response.read()
        result["status"] = response.status
        try:
            result["imported"] = json.loads(payload).get("imported")
        except ValueError:
            result["body"] = payload[:300].decode(errors="replace")
    except (http.client.HTTPException, OSError) as exc:
        # e.g. gunicorn's timeout: a sync worker busy with one request longer than it is killed.
        result["error"] = type(exc).__name__
        log(f"bulk: the import request failed ({type(exc).__name__})")
    finally:
        conn.close()
    seconds = time.monotonic() - started
    result["seconds"] = round(seconds, 3)
    result["rows_per_s"] = round(result["imported"] / seconds) if result.get("imported") else 0
    return result


def bulk(database: str, keys: Keys, args, logs: Path) -> dict:
    conn = connect(database)
    log(f"bulk: generating {args.rows:,} articles")
    generated_s = generate_articles(conn, args.rows, first=1001)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM articles")
        total = cur.fetchone()["n"]
    result: dict = {"articles": total, "generate_seconds": round(generated_s, 1)}
    server = start_service(database, 1, logs, MAX_BODY_BYTES=str(512 * 1024 * 1024))
    try:
        (worker,) = server.workers()
        log("bulk: mariadb --batch client, first pass")
        client_runs = [client_export(database)]
        reset_peak(worker)
        before = vm_status(worker)
        log("bulk: NDJSON export through the service")
        cpu = Cpu(worker)
        export = service_export(server, keys.bulk)
        export.update(rss_before_kb=before.get("VmRSS"), peak_rss_kb=vm_status(worker).get("VmHWM"),
                      **cpu.used())
        log("bulk: mariadb --batch client, second pass")
        client_runs.append(client_export(database))
        client = max(client_runs, key=lambda r: r["rows_per_s"])
        result.update(export=export, client=client, client_runs=client_runs,
                      export_ratio=round(export["rows_per_s"] / client["rows_per_s"], 3))

        body = ndjson_body(args.import_rows)
        server.wait_ready("/health")
        (worker,) = server.workers()  # a new one if gunicorn killed the first (its timeout)
        reset_peak(worker)
        before = vm_status(worker)
        log(f"bulk: NDJSON import of {args.import_rows:,} articles ({len(body) / 1e6:.0f} MB)")
        cpu = Cpu(worker)
        imported = service_import(server, keys.bulk, body)
        imported.update(rss_before_kb=before.get("VmRSS"),
                        peak_rss_kb=vm_status(worker).get("VmHWM"), **cpu.used())
        result["import"] = imported
    finally:
        server.stop()
        conn.close()
    return result


# ---------------------------------------------------------------------------------------------
# Checks after the service has stopped


def checks(database: str, keys: Keys, runs: dict[str, Run]) -> dict:
    conn = connect(database)
    with conn.cursor() as cur:
        cur.execute("SELECT label, id, calls_made FROM api_keys")
        calls = {r["label"]: r["calls_made"] for r in cur.fetchall()}
        cur.execute(
            "SELECT key_id, response_code, COUNT(*) AS n FROM audit_logs "
            "GROUP BY key_id, response_code"
        )
        audit_rows = cur.fetchall()
    conn.close()
    by_label = {v: k for k, v in keys.ids.items()}
    audit: dict[str, dict[str, int]] = {}
    for row in audit_rows:
        label = by_label.get(row["key_id"], str(row["key_id"]))
        audit.setdefault(label, {})[str(row["response_code"])] = row["n"]

    f_labels = [f"F{i + 1}" for i in range(len(keys.f))]
    f_sent = runs["F"].sent
    f_calls = sum(calls[label] for label in f_labels)
    f_audit = {}
    for label in f_labels:
        for code, n in audit.get(label, {}).items():
            f_audit[code] = f_audit.get(code, 0) + n
    r_sent, u_sent = runs["R"].sent, runs["U"].sent
    audit_total = sum(sum(codes.values()) for codes in audit.values())
    b2_sent = runs["B2"].sent if "B2" in runs else None
    b3_sent = runs["B3"].sent if "B3" in runs else None
    return {
        "f_sent": f_sent, "f_calls_made": f_calls, "f_audit": f_audit,
        "r_sent": r_sent, "r_calls_made": calls["R"], "r_audit": audit.get("R", {}),
        "u_sent": u_sent, "u_audit": audit.get("U", {}),
        "audit_rows": audit_total, "requests_sent": f_sent + r_sent + u_sent,
        "b2_sent": b2_sent, "b2_calls_made": calls["B2"],
        "b3_sent": b3_sent, "b3_calls_made": calls["B3"],
        "quota_exact": f_calls == f_sent and calls["R"] == SPENT_LIMIT,
        "audit_complete": (
            audit_total == f_sent + r_sent + u_sent
            # A run left out with --only sent nothing and must have no rows.
            and f_audit == ({"200": f_sent} if f_sent else {})
            and audit.get("R", {}) == ({"429": r_sent} if r_sent else {})
            and audit.get("U", {}) == ({"200": u_sent} if u_sent else {})
        ),
    }


# ---------------------------------------------------------------------------------------------
# Report


def mb(kb: int | None) -> str:
    return "? (worker gone)" if kb is None else f"{kb / 1024:.0f} MB"


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def report(results: dict) -> str:
    lines = []
    m = results["machine"]
    a = results["args"]
    lines.append(
        f"{results['date']}  {m['cpu']} x{m['nproc']}, {m['ram_gb']} GB, MariaDB {m['mariadb']}, "
        f"Python {m['python']}"
    )
    lines.append(
        f"gunicorn sync workers: {a['workers']}; wrk: {a['threads']} threads, "
        f"{a['connections']} connections, {a['warmup']} s warm-up + {a['seconds']} s; "
        f"load average before: {results['loadavg_before']}"
    )
    lines.append("")
    lines.append(f"{'run':<4} {'what':<38} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
                 f"{'requests':>8} {'non-2xx':>7}   CPU ms/request: app   db  wrk other")
    for name, row in results["runs"].items():
        lat = row["measured"]["latency_us"]
        cpu = row["measured"]["cpu_per_request"]
        lines.append(
            f"{name:<4} {row['what']:<38} {row['rps']:>7,.0f} {ms(lat['p50']):>7} "
            f"{ms(lat['p99']):>7} {row['measured']['requests']:>8,} "
            f"{row['measured']['errors']['status']:>7,}   {'':>14} {cpu['app_ms']:>5.2f} "
            f"{cpu['db_ms']:>4.2f} {cpu['wrk_ms']:>4.2f} {cpu['other_ms']:>5.2f}"
        )
    lines.append("")
    for name, value in results["ratios"].items():
        target = results["targets"].get(name)
        verdict = "" if target is None else (
            f"  target {target['rule']}: {'met' if target['met'] else 'NOT met'}")
        lines.append(f"{name:<14} {value:>6.2f}{verdict}")
    c = results.get("checks")
    if c:
        lines.append("")
        lines.append(
            f"quota: F keys calls_made {c['f_calls_made']:,} == F requests sent {c['f_sent']:,}; "
            f"R key calls_made {c['r_calls_made']} (limit {SPENT_LIMIT}) after {c['r_sent']:,} "
            f"refusals: {'exact' if c['quota_exact'] else 'NOT exact'}"
        )
        lines.append(
            f"audit: {c['audit_rows']:,} rows == {c['requests_sent']:,} requests sent "
            f"(F {c['f_audit']}, R {c['r_audit']}, U {c['u_audit']}): "
            f"{'none lost' if c['audit_complete'] else 'MISMATCH'}"
        )
        counted = [f"{n} row updated {c[f'{n.lower()}_calls_made']:,} times for "
                   f"{c[f'{n.lower()}_sent']:,} requests written"
                   for n in ("B2", "B3") if c.get(f"{n.lower()}_sent") is not None]
        if counted:
            lines.append("harness: " + "; ".join(counted))
    b = results.get("bulk")
    if b:
        e, cl, i = b["export"], b["client"], b["import"]
        lines.append("")
        lines.append(f"bulk ({b['articles']:,} articles, 1 worker):")
        lines.append(
            f"  export NDJSON   {e['rows_per_s']:>9,} rows/s  {e['rows']:,} rows "
            f"{e['bytes'] / 1e6:,.0f} MB in {e['seconds']} s; worker peak RSS "
            f"{mb(e['peak_rss_kb'])}; CPU s: worker {e['worker_cpu_s']}, "
            f"MariaDB {e['db_cpu_s']}"
        )
        lines.append(
            f"  mariadb --batch {cl['rows_per_s']:>9,} rows/s  {cl['rows']:,} rows "
            f"{cl['bytes'] / 1e6:,.0f} MB in {cl['seconds']} s; CPU s: client "
            f"{cl['client_cpu_s']}, MariaDB {cl['db_cpu_s']}"
        )
        failed = (f" FAILED: {i['error']}," if i.get("error")
                  else f" FAILED: HTTP {i['status']}," if i.get("status") != 200 else "")
        lines.append(
            f"  import NDJSON   {i['rows_per_s']:>9,} rows/s  {i.get('imported')} rows{failed} "
            f"{i['bytes'] / 1e6:,.0f} MB in {i['seconds']} s; worker peak RSS "
            f"{mb(i['peak_rss_kb'])}; CPU s: worker {i['worker_cpu_s']}, "
            f"MariaDB {i['db_cpu_s']}"
        )
    lines.append("")
    lines.append("targets: " + ", ".join(
        f"{name} {'met' if t['met'] else 'NOT met'}" for name, t in results["targets"].items()))
    lines.append(f"wall time: {results['wall_seconds']:.0f} s")
    return "\n".join(lines)


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1])
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION() AS v")
        version = cur.fetchone()["v"]
    conn.close()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(ram / 1024 / 1024),
            "mariadb": version, "python": platform.python_version(),
            "wrk": wrk_version.splitlines()[0] if wrk_version else "", "kernel": platform.release()}


def targets(results: dict) -> dict:
    out = {}
    runs = results["runs"]
    if {"F", "B2"} <= runs.keys():
        f, b2 = runs["F"], runs["B2"]
        out["F/B2"] = {"rule": ">= 0.5", "met": f["rps"] >= 0.5 * b2["rps"]}
        out["p99 F/B2"] = {
            "rule": "<= 2",
            "met": f["measured"]["latency_us"]["p99"] <= 2 * b2["measured"]["latency_us"]["p99"],
        }
    if {"R", "B1"} <= runs.keys():
        out["R/B1"] = {"rule": ">= 0.8", "met": runs["R"]["rps"] >= 0.8 * runs["B1"]["rps"]}
    c = results.get("checks")
    if c:
        out["quota exact"] = {"rule": "==", "met": c["quota_exact"]}
        out["audit complete"] = {"rule": "==", "met": c["audit_complete"]}
    b = results.get("bulk")
    if b:
        out["export/client"] = {"rule": ">= 0.3", "met": b["export_ratio"] >= 0.3}
        peak = b["export"]["peak_rss_kb"]
        out["export peak RSS"] = {"rule": "< 150 MB", "met": peak is not None and peak < 150 * 1024}
        out["export complete"] = {
            "rule": "all rows",
            "met": b["export"]["complete"] and b["export"]["rows"] == b["articles"],
        }
        out["import complete"] = {"rule": "all rows",
                                  "met": b["import"].get("imported") == results["args"][
                                      "import_rows"]}
    return out


def ratios(runs: dict) -> dict:
    out = {}

    def rps(name: str) -> float | None:
        return runs[name]["rps"] if name in runs else None

    for a, b in (("F", "B2"), ("F", "B1"), ("R", "B1"), ("U", "B1"), ("F", "B3"), ("B3", "B2")):
        if rps(a) and rps(b):
            out[f"{a}/{b}"] = round(rps(a) / rps(b), 3)
    if "F" in runs and "B2" in runs:
        out["p99 F/B2"] = round(
            runs["F"]["measured"]["latency_us"]["p99"]
            / runs["B2"]["measured"]["latency_us"]["p99"], 3)
    return out


# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per run")
    parser.add_argument("--workers", type=int, default=4, help="WEB_CONCURRENCY (all servers)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--f-keys", type=int, default=1,
                        help="keys the F run spreads its requests over (default 1: one row)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="articles for the export")
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true",
                        help="5 s runs, 2 s warm-up, 100,000 articles, 10,000 imported")
    parser.add_argument("--only", default="B0,B1,B2,B3,F,R,U,bulk",
                        help="comma-separated subset of B0,B1,B2,B3,F,R,U,bulk (to iterate on "
                             "one part; the table of record runs them all)")
    parser.add_argument("--profile", default="", metavar="RUNS",
                        help="e.g. F,R: one more run of each under py-spy (requirements-bench.txt),"
                             " after the measured ones; its figures are not in the table")
    parser.add_argument("--keep-database", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 5), min(args.warmup, 2)
        args.rows, args.import_rows = min(args.rows, 100_000), min(args.import_rows, 10_000)
    args.only = set(args.only.split(","))
    args.profile = set(filter(None, args.profile.split(",")))
    return args


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
    database = f"bench_{secrets.token_hex(5)}"
    admin = connect()
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE " + quote_identifier(database) + " CHARACTER SET utf8mb4")
    log(f"database {database}; logs in {logs}")
    runs: dict[str, Run] = {}
    servers: list[Server] = []
    try:
        conn = connect(database)
        migrations.migrate(conn, log=lambda _line: None)
        keys = seed(conn, args.f_keys)
        conn.close()

        # Both servers are up for the whole series (an idle one costs nothing), and each service
        # run follows the baseline it is compared with, so that a change in the machine's load
        # (other work on it) hits both sides of a ratio alike.
        series = args.only & {"B0", "B1", "B2", "B3", "F", "R", "U"}
        baseline = start_baseline(database, args.workers, logs, keys) if series else None
        service = start_service(database, args.workers, logs) if series else None
        servers += [s for s in (baseline, service) if s]
        for name, what, server, path, run_keys in () if not series else (
            ("B1", "one primary-key SELECT", baseline, "/b1", []),
            ("R", "over quota (429)", service, "/api/export?limit=1", [keys.r]),
            ("B2", "one single-row UPDATE (autocommit)", baseline, "/b2", []),
            ("F", "GET /api/export?limit=1 (valid key)", service, "/api/export?limit=1", keys.f),
            ("B3", "F's three statements, bare", baseline, "/b3", []),
            ("U", "GET /api/usage", service, "/api/usage", [keys.u]),
            ("B0", "bare Flask route, no database", baseline, "/b0", []),
        ):
            runs[name] = Run(name, what, server.url + path, run_keys)
            if name in args.only:
                drive(server, runs[name], args)
        for name in args.profile & {"F", "R", "U"}:
            prof = profile_run(service, runs[name], args, REPORTS)
            if prof:
                runs[name].profiled = prof["wrk"]
                results.setdefault("profiles", {})[name] = prof
        if series:
            log("SIGTERM to both servers (the service's workers flush their audit buffers)")
            baseline.stop()
            service.stop()
            results["checks"] = checks(database, keys, runs)

        results["runs"] = {
            name: {"what": r.what, "rps": round(r.rps, 1), "measured": r.measured,
                   "warmup": r.warmup}
            for name, r in sorted(runs.items(), key=lambda kv: RUN_ORDER.index(kv[0]))
            if r.measured
        }
        if "bulk" in args.only:
            results["bulk"] = bulk(database, keys, args, logs)
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()
        if not args.keep_database:
            with admin.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS " + quote_identifier(database))
        admin.close()

    results["ratios"] = ratios(results["runs"])
    results["targets"] = targets(results)
    results["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    text = report(results)
    print(text)
    (REPORTS / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (REPORTS / f"bench-{stamp}.txt").write_text(text + "\n")
    shutil.copy(REPORTS / f"bench-{stamp}.json", REPORTS / "latest.json")
    shutil.copy(REPORTS / f"bench-{stamp}.txt", REPORTS / "latest.txt")
    for name, p in results.get("profiles", {}).items():
        print(f"\nprofile of {name} under py-spy --gil ({p['samples']} samples, {p['raw']})")
        print("  where (innermost frame's package): " + ", ".join(
            f"{package} {share}%" for package, share in p["self_by_package"]))
        print("  innermost functions: " + ", ".join(
            f"{frame} {share}%" for frame, share in p["self_top"][:10]))
        print("  what for (functions on the stack, share of samples):")
        for frame, share in p["inclusive_top"]:
            print(f"  {share:5.1f}%  {frame}")
    shutil.rmtree(logs, ignore_errors=True)
    print(f"\nsaved: reports/bench/bench-{stamp}.json and .txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
