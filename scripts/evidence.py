#!/usr/bin/env python3
"""Regenerate the evidence committed under monitoring/ and docs/screenshots/, from real runs.

    .venv/bin/python scripts/evidence.py [--skip-screenshots]

1. monitoring/logs.txt: the service's own log of a quota cycle for key_ABC123 (five 200s, the
   429 with its reset time, and the next UTC day's 200). The service runs under libfaketime
   (Debian's `faketime`), started ten seconds before 00:00 UTC, so the day really turns while it
   runs; nothing is edited afterwards.
2. monitoring/report-*.json and monitoring/validation.txt: the monitor's validation from the brief
   against the real service: healthy (exit 0), an endpoint slowed by a relay that delays every
   answer by 700 ms (exit 1), the service stopped (exit 1).
3. docs/screenshots/*.png: scripts/screenshots (a real newman run rendered by headless Chromium).

Every run uses a throw-away database; keys appear only as their 6-character prefix.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pymysql
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import migrations  # noqa: E402
from service.cli import quote_identifier  # noqa: E402

MONITORING = ROOT / "monitoring"
DB = {
    "host": os.environ.get("DB_HOST", "127.0.0.1"),
    "port": int(os.environ.get("DB_PORT", "3306")),
    "user": os.environ.get("DB_USER", "root"),
    "password": os.environ.get("DB_PASS", ""),
}
FULL_KEYS = ("key_ABC123", "key_DEF456")
def libfaketime() -> Path:
    """Debian's libfaketime, installed if missing."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not found:
        subprocess.run(["apt-get", "install", "-y", "faketime"], check=True, capture_output=True)
        found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Database:
    def __init__(self):
        self.name = f"evidence_{uuid.uuid4().hex[:8]}"
        self.admin = pymysql.connect(**DB, autocommit=True)
        self.admin.cursor().execute("CREATE DATABASE " + quote_identifier(self.name))
        conn = pymysql.connect(**DB, database=self.name, autocommit=True)
        migrations.migrate(conn, log=lambda _line: None)
        migrations.load_sample_data(conn)
        conn.close()

    def drop(self) -> None:
        self.admin.cursor().execute("DROP DATABASE IF EXISTS " + quote_identifier(self.name))
        self.admin.close()


class Service:
    def __init__(self, database: str, log_path: Path, *, workers: int, extra_env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DB_NAME": database, "PORT": str(self.port), "BIND_HOST": "127.0.0.1",
            "WEB_CONCURRENCY": str(workers),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            **(extra_env or {}),
        }
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for _ in range(300):
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.log.close()


def quota_cycle_log() -> None:
    """Five 200s, a 429, and the next UTC day's 200, in the service's own log."""
    today = datetime.now(UTC).date()
    start = f"{today} 23:59:50"
    db = Database()
    raw = MONITORING / ".logs.raw"
    try:
        # The library preloaded into gunicorn itself (not the `faketime` wrapper, which would sit
        # between us and gunicorn and swallow the SIGTERM): the clock starts at `start` and runs.
        service = Service(db.name, raw, workers=1,
                          extra_env={"LD_PRELOAD": str(libfaketime()), "FAKETIME": f"@{start}"})
        try:
            headers = {"X-API-Key": "key_ABC123"}
            for _ in range(6):
                requests.get(service.url + "/api/export?limit=1", headers=headers, timeout=10)
            # Wait, in the service's own (faked) clock, until the UTC day has turned.
            usage = requests.get(service.url + "/api/usage", headers=headers, timeout=10).json()
            time.sleep(usage["reset_in_seconds"] + 1)
            after = requests.get(service.url + "/api/export?limit=1", headers=headers, timeout=10)
            assert after.status_code == 200, after.text
        finally:
            service.stop()
    finally:
        db.drop()
    lines = raw.read_text(encoding="utf-8").splitlines()
    raw.unlink()
    header = [
        "# The service's log (gunicorn + the app's JSON request lines) of a quota cycle for the",
        "# sample key key_AB... (5 calls a day): five 200s, the 429 with its reset time, and the",
        "# first call of the next UTC day, which is admitted again. Keys appear only as prefixes.",
        "# The service ran under libfaketime, started at "
        f"{start} UTC, so the day turned while it ran.",
        "# Regenerate: .venv/bin/python scripts/evidence.py",
        f"# Made: {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "",
    ]
    write_checked(MONITORING / "logs.txt", "\n".join(header + lines) + "\n")


class DelayingRelay(http.server.ThreadingHTTPServer):
    """Answers like the service, 700 ms later: the brief's "slow endpoint"."""

    daemon_threads = True

    def __init__(self, upstream_port: int, delay: float = 0.7):
        self.upstream_port, self.delay = upstream_port, delay
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        time.sleep(self.server.delay)
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request("GET", self.path, headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def log_message(self, *args):
        pass


def monitor(base_url: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_API_KEY"] = "key_DEF456"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "service_monitor.py"), "--base-url", base_url],
        env=env, capture_output=True, text=True, timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def monitor_validation() -> None:
    for old in MONITORING.glob("report-*.json"):
        old.unlink()
    db = Database()
    log = MONITORING / ".serve.log"
    runs = []
    try:
        service = Service(db.name, log, workers=2)
        try:
            runs.append(("healthy service", "0", *monitor(service.url)))
            relay = DelayingRelay(service.port)
            runs.append(("every answer delayed 700 ms by a relay", "1", *monitor(relay.url)))
            relay.shutdown()
        finally:
            service.stop()
        runs.append(("service stopped", "1", *monitor(service.url)))
    finally:
        db.drop()
        log.unlink(missing_ok=True)
    text = [
        "# The brief's monitoring validation, run against the real service (scripts/serve).",
        "# Regenerate: .venv/bin/python scripts/evidence.py",
        f"# Made: {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "",
    ]
    for what, expected, code, output in runs:
        text += [f"## {what}: exit {code} (expected {expected})",
                 "$ MONITOR_API_KEY=... python scripts/service_monitor.py --base-url <url>",
                 re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", output)
                 .replace(f"{ROOT}/", "").rstrip(), ""]
        if str(code) != expected:
            raise SystemExit(f"monitor exit {code} for {what}, expected {expected}")
    write_checked(MONITORING / "validation.txt", "\n".join(text) + "\n")


def write_checked(path: Path, text: str) -> None:
    for key in FULL_KEYS:
        if key in text:
            raise SystemExit(f"refusing to write {path.name}: it holds a full key")
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-screenshots", action="store_true")
    args = parser.parse_args()
    quota_cycle_log()
    monitor_validation()
    for report in sorted(MONITORING.glob("report-*.json")):
        write_checked(report, report.read_text(encoding="utf-8"))
    if not args.skip_screenshots:
        subprocess.run([str(ROOT / "scripts" / "screenshots")], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
