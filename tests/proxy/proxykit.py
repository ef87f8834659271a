"""The production shape on loopback: scripts/proxy (real nginx) in front of real instances
(scripts/serve) sharing one fresh database, plus what the tests need to look inside it:
the access log, the processes, and keys made for the test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from service.keys import generate_key, key_prefix
from testkit import ROOT, Served, Sql, free_port, fresh_database, key_hash, start_service

# What the instances behind the proxy run with: exactly one trusted proxy, as docs/operations.md
# prescribes for this shape.
BEHIND_ONE_PROXY = {"TRUSTED_PROXIES": "1"}


def require_nginx() -> None:
    if subprocess.run(["sh", "-c", "command -v nginx"], capture_output=True).returncode != 0:
        pytest.fail(
            "nginx is not installed (scripts/test installs it; or apt-get install nginx), "
            'or deselect these tests with -m "not proxy"'
        )


def children(pid: int) -> list[int]:
    """Direct child processes, from /proc (Linux)."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Proxy:
    process: subprocess.Popen
    port: int
    access_log: Path
    error_log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def entries(self) -> list[dict]:
        """The access log, one dict per request."""
        text = self.access_log.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def entry_for(self, request_id: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.entries():
                if entry["request_id"] == request_id:
                    return entry
            if time.monotonic() > deadline:
                pytest.fail(f"no access log line for request {request_id}")
            time.sleep(0.05)

    def nginx_master(self) -> int:
        (master,) = children(self.process.pid)
        return master

    def worker_pids(self) -> list[int]:
        return children(self.nginx_master())

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # our own session: scripts/proxy, nginx
                self.process.wait()
        return self.process.returncode


def start_proxy(upstreams: list[str], logs: Path, **env: str) -> Proxy:
    port = free_port()
    access_log, error_log = logs / f"proxy-{port}.access.log", logs / f"proxy-{port}.error.log"
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "proxy")],
        cwd=ROOT,
        env={
            **os.environ,
            "PROXY_PORT": str(port),
            "PROXY_BIND_HOST": "127.0.0.1",
            "UPSTREAMS": ",".join(upstreams),
            "PROXY_WORKERS": "2",
            # Its own new directory under /tmp (pytest's are private to root, and nginx's
            # workers, unprivileged, must reach their temporary files).
            "TMPDIR": "/tmp",
            **env,
        },
        stdout=open(access_log, "wb"),  # noqa: SIM115 - handed to the child process
        stderr=open(error_log, "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    proxy = Proxy(process, port, access_log, error_log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"scripts/proxy exited early:\n{error_log.read_text()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(proxy.url + "/health", timeout=1).status_code == 200:
                return proxy
        time.sleep(0.1)
    proxy.stop()
    pytest.fail(f"scripts/proxy did not answer within 15 s:\n{error_log.read_text()}")


def kill_instance(served: Served) -> list[int]:
    """SIGKILL an instance's gunicorn master and every worker (the PIDs this test started): no
    graceful anything, as when a machine dies."""
    pids = [served.process.pid, *children(served.process.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    served.process.wait()
    return pids


def gunicorn_workers(served: Served) -> list[int]:
    return children(served.process.pid)


@dataclass
class Stack:
    database: str
    sql: Sql
    instances: list[Served]
    proxy: Proxy
    logs: Path

    @property
    def url(self) -> str:
        return self.proxy.url

    def add_key(self, scopes: str = "export", daily_limit: int = 100_000, user_id: int = 2) -> str:
        key = generate_key()
        self.sql.run(
            "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, label, rate_limit, "
            "calls_made, is_valid, created_at) VALUES (%s, %s, %s, %s, 'proxy test', %s, 0, 1, %s)",
            (
                user_id,
                key_hash(key),
                key_prefix(key),
                scopes,
                daily_limit,
                datetime.now(UTC).replace(tzinfo=None),
            ),
        )
        return key

    def calls_made(self, key: str) -> int:
        return self.sql.value(
            "SELECT calls_made FROM api_keys WHERE key_hash = %s", (key_hash(key),)
        )

    def audit_rows(self, key: str) -> list[dict]:
        return self.sql.all(
            "SELECT a.* FROM audit_logs a JOIN api_keys k ON k.id = a.key_id "
            "WHERE k.key_hash = %s ORDER BY a.id",
            (key_hash(key),),
        )

    def service_log_lines(self) -> list[dict]:
        lines = []
        for served in self.instances:
            for line in served.log_text().splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines


@contextlib.contextmanager
def proxy_stack(
    logs: Path,
    *,
    instances: int = 2,
    workers: int = 2,
    service_env: dict[str, str] | None = None,
    proxy_env: dict[str, str] | None = None,
    sample: bool = True,
    prepare=None,
) -> Iterator[Stack]:
    """A fresh database, `instances` copies of scripts/serve on it, scripts/proxy in front.
    `prepare(sql)` runs on the database before the instances start."""
    require_nginx()
    logs.mkdir(parents=True, exist_ok=True)
    started: list[Served] = []
    proxy = None
    with fresh_database(sample=sample) as database:
        sql = Sql(database)
        try:
            if prepare is not None:
                prepare(sql)
            for index in range(instances):
                started.append(
                    start_service(
                        database,
                        logs / f"instance-{index}.log",
                        workers=workers,
                        extra_env={**BEHIND_ONE_PROXY, **(service_env or {})},
                    )
                )
            upstreams = [f"127.0.0.1:{served.port}" for served in started]
            proxy = start_proxy(upstreams, logs, **(proxy_env or {}))
            yield Stack(database, sql, started, proxy, logs)
        finally:
            if proxy is not None:
                proxy.stop()
            for served in started:
                served.stop()
            sql.close()
