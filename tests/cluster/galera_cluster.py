"""A real three-node Galera cluster for the tests: started with scripts/galera, reached over TCP.

Each test session starts its own cluster on free ports in its own directory (so two test runs on
one machine never share one), unless GALERA_TEST_PORTS names a running cluster to reuse (it is
then left running). Used by tests/cluster/conftest.py only.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pymysql
import pymysql.cursors
import requests

from service import migrations
from testkit import ROOT, TEST_SECRET, key_hash, node_connection

GALERA = ROOT / "scripts" / "galera"
# Client ports are drawn below the ephemeral range (32768+), where outgoing connections never
# land; scripts/galera adds 1000, 2000 and 3000 to each for the group, IST and SST ports.
_PORT_RANGE = (20000, 28000)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_client_ports() -> list[int]:
    for _ in range(200):
        base = random.randrange(*_PORT_RANGE)
        ports = [base, base + 1, base + 2]
        if all(_port_free(p + offset) for p in ports for offset in (0, 1000, 2000, 3000)):
            return ports
    raise RuntimeError("no free ports for a Galera cluster")


def connect(port: int, database: str | None = None, **kwargs) -> pymysql.Connection:
    """A node's root account (scripts/galera: empty password, TCP on loopback)."""
    return node_connection(port, database, connect_timeout=3, **kwargs)


@dataclass
class Cluster:
    ports: list[int]
    directory: Path
    owned: bool  # started by this session, stopped at its end

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GALERA_PORTS": ",".join(map(str, self.ports)),
            "GALERA_DIR": str(self.directory),
        }

    def run(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [str(GALERA), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            command = " ".join(args)
            raise RuntimeError(f"scripts/galera {command} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def hosts(self, first: int = 0) -> str:
        """DB_HOSTS for an instance whose own node is `first` (0-based), the others after it."""
        order = self.ports[first:] + self.ports[:first]
        return ",".join(f"127.0.0.1:{p}" for p in order)

    def status(self, node: int) -> dict[str, str]:
        conn = connect(self.ports[node])
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_%%'")
                return {row["Variable_name"]: row["Value"] for row in cur.fetchall()}
        finally:
            conn.close()

    def healthy(self) -> bool:
        try:
            return all(
                (s := self.status(n))["wsrep_cluster_size"] == "3"
                and s["wsrep_local_state_comment"] == "Synced"
                for n in range(3)
            )
        except pymysql.err.MySQLError:
            return False

    def error_log(self, node: int) -> str:
        path = self.directory / f"node{node + 1}" / "error.log"
        return path.read_text(encoding="utf-8", errors="replace")


def answering(ports: list[int]) -> bool:
    try:
        for port in ports:
            connect(port).close()
    except pymysql.err.MySQLError:
        return False
    return True


@contextlib.contextmanager
def session_cluster() -> Iterator[Cluster]:
    given = os.environ.get("GALERA_TEST_PORTS")
    if given:
        ports = [int(p) for p in given.split(",")]
        directory = Path(os.environ.get("GALERA_DIR", "/tmp/wme-galera"))
        if answering(ports):
            yield Cluster(ports, directory, owned=False)
            return
    else:
        ports = free_client_ports()
        directory = Path(tempfile.mkdtemp(prefix="wme-galera-test-"))
        directory.chmod(0o755)  # the nodes run as mysql and must reach their own folders
    cluster = Cluster(ports, directory, owned=True)
    try:
        cluster.run("start")
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.run("stop", timeout=120)
        if not given:
            shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def cluster_database(cluster: Cluster, *, node: int = 0) -> Iterator[str]:
    """A fresh database created, migrated and filled with the sample through one node only: DDL
    and rows reach the other two by replication."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    admin = connect(cluster.ports[node])
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn = connect(cluster.ports[node], name)
        try:
            migrations.migrate(conn, log=lambda _line: None)
            migrations.load_sample_data(conn, TEST_SECRET)
        finally:
            conn.close()
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def synced_value(port: int, database: str, statement: str, params=None):
    """One value read on one node after it has applied everything committed before the read
    (wsrep_sync_wait: a read on a node waits for the writesets already ordered)."""
    conn = connect(port, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute(statement, params)
            row = cur.fetchone()
            return None if row is None else next(iter(row.values()))
    finally:
        conn.close()


def synced_rows(port: int, database: str, statement: str, params=None) -> list[dict]:
    conn = connect(port, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute(statement, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def add_key(port: int, database: str, key: str, limit: int) -> int:
    conn = connect(port, database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit, "
                "calls_made, is_valid) VALUES (1, %s, LEFT(%s, 6), 'export', %s, 0, 1)",
                (key_hash(key), key, limit),
            )
            return cur.lastrowid
    finally:
        conn.close()


def burst(
    urls: list[str], key: str, total: int, *, threads: int = 200, gate=None, seen=None
) -> list[requests.Response]:
    """`total` requests at once from `threads` threads released together, round-robin over
    `urls`, each on a fresh connection with its own X-Request-ID. `gate(index)`, when given, is
    called before request `index` is sent (a test may hold some back); every response is also
    appended to the list `seen` as it arrives, when given."""
    start = threading.Barrier(threads)

    def worker(first: int) -> list[requests.Response]:
        start.wait()
        mine = []
        for n in range(first, total, threads):
            if gate is not None:
                gate(n)
            response = requests.get(
                urls[n % len(urls)] + "/api/export?limit=1",
                headers={"X-API-Key": key, "Connection": "close", "X-Request-ID": uuid.uuid4().hex},
                timeout=60,
            )
            mine.append(response)
            if seen is not None:
                seen.append(response)
        return mine

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(worker, range(threads)))
    return [response for chunk in results for response in chunk]


def unexpected(responses: list[requests.Response], served: list, expected=(200, 429)) -> str:
    """The answers outside `expected`, each with its body and the instances' log lines that name
    its request id, then the instances' warnings and errors: what a failed assertion shows."""
    logs = "\n".join(s.log_text() for s in served).splitlines()
    shown = []
    for response in responses:
        if response.status_code in expected:
            continue
        request_id = response.request.headers["X-Request-ID"]
        lines = [line for line in logs if request_id in line]
        shown.append(f"{response.status_code} {response.text.strip()}\n  " + "\n  ".join(lines))
    if shown:
        troubles = ('"level": "WARNING"', '"level": "ERROR"')
        shown += [line for line in logs if any(level in line for level in troubles)]
    return "\n".join(shown)


class MovableClock:
    """A clock file the test moves, read by the served instances' UTC clocks through
    tests/cluster/clock/sitecustomize.py (every process started with `env`)."""

    def __init__(self, path: Path):
        self.path = path
        self.path.write_text("0\n", encoding="ascii")

    @property
    def env(self) -> dict[str, str]:
        return {
            "PYTHONPATH": str(Path(__file__).resolve().parent / "clock"),
            "WME_TEST_CLOCK_FILE": str(self.path),
        }

    def set(self, moment: datetime) -> None:
        offset = (moment - datetime.now(UTC)).total_seconds()
        temporary = self.path.with_suffix(".new")
        temporary.write_text(f"{offset:.3f}\n", encoding="ascii")
        temporary.replace(self.path)  # atomic: a reader never sees half a line
