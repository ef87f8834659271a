"""The bulk paths (one worker, so that it is the one measured): the NDJSON export next to the
`mariadb --batch` client, and one NDJSON import; rows/s, CPU, the worker's peak RSS."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from pathlib import Path

from testkit import Served, mysql_client, root_connection

from . import log
from .load import cpu_seconds, mariadb_pid, start_server
from .seeding import Keys, generate_articles


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
    argv, env = mysql_client(
        database,
        "--batch",
        "-e",
        "SELECT id,title,url,language,summary,updated_at FROM articles ORDER BY id DESC",
    )
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
    return {
        "rows": rows,
        "bytes": nbytes,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "db_cpu_s": round(db, 2),
    }


def service_export(server: Served, key: str) -> dict:
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
    return {
        "status": response.status,
        "rows": lines,
        "bytes": nbytes,
        "complete": complete,
        "seconds": round(seconds, 3),
        "first_byte_s": round(first_byte, 3),
        "rows_per_s": round(lines / seconds),
    }


def ndjson_body(count: int) -> bytes:
    lines = []
    summary = ("Imported benchmark article. " * 12)[:300]
    for i in range(count):
        lines.append(
            json.dumps(
                {
                    "title": f"Imported article {i}",
                    "url": f"https://de.wikipedia.org/wiki/Import_{i}",
                    "language": "de",
                    "summary": f"{i} {summary}",
                    "updated_at": "2025-06-01T12:00:00Z",
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def service_import(server: Served, key: str, body: bytes) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    started = time.monotonic()
    result: dict = {"bytes": len(body)}
    try:
        conn.request(
            "POST",
            "/api/import",
            body=body,
            headers={"X-API-Key": key, "Content-Type": "application/x-ndjson"},
        )
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
    conn = root_connection(database)
    log(f"bulk: generating {args.rows:,} articles")
    generated_s = generate_articles(conn, args.rows, first=1001)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM articles")
        total = cur.fetchone()["n"]
    result: dict = {"articles": total, "generate_seconds": round(generated_s, 1)}
    server = start_server(database, 1, logs, MAX_BODY_BYTES=str(512 * 1024 * 1024))
    try:
        (worker,) = server.workers()
        log("bulk: mariadb --batch client, first pass")
        client_runs = [client_export(database)]
        reset_peak(worker)
        before = vm_status(worker)
        log("bulk: NDJSON export through the service")
        cpu = Cpu(worker)
        export = service_export(server, keys.bulk)
        export.update(
            rss_before_kb=before.get("VmRSS"),
            peak_rss_kb=vm_status(worker).get("VmHWM"),
            **cpu.used(),
        )
        log("bulk: mariadb --batch client, second pass")
        client_runs.append(client_export(database))
        client = max(client_runs, key=lambda r: r["rows_per_s"])
        result.update(
            export=export,
            client=client,
            client_runs=client_runs,
            export_ratio=round(export["rows_per_s"] / client["rows_per_s"], 3),
        )

        body = ndjson_body(args.import_rows)
        server.wait_ready()
        (worker,) = server.workers()  # a new one if gunicorn killed the first (its timeout)
        reset_peak(worker)
        before = vm_status(worker)
        log(f"bulk: NDJSON import of {args.import_rows:,} articles ({len(body) / 1e6:.0f} MB)")
        cpu = Cpu(worker)
        imported = service_import(server, keys.bulk, body)
        imported.update(
            rss_before_kb=before.get("VmRSS"),
            peak_rss_kb=vm_status(worker).get("VmHWM"),
            **cpu.used(),
        )
        result["import"] = imported
    finally:
        server.stop(timeout=60)
        conn.close()
    return result
