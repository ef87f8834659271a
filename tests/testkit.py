"""The one harness: throw-away databases, the app, the real service on a free port, a TCP relay.

Used by the tests (`from testkit import ...`: setup.cfg puts tests/ on the path; the fixtures
that use it are in conftest.py), by the benchmark (scripts/benchmark) and by scripts/evidence.py,
which put tests/ on their path. It needs only the runtime requirements (pytest is imported by
wait_until alone, which only tests call).

Every database it creates is its own (created, migrated, dropped), named after a prefix, the
xdist worker and a random suffix, so runs in parallel never meet and never touch wikimedia_prod.
The connection settings are TEST_DB_HOST/PORT/USER/PASS (default root on 127.0.0.1:3306), not
DB_*: a developer's DB_* may name a real database, and tests must never decide to use it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pymysql.cursors

from service import create_app, legacy_upgrade, migrations
from service.cli import quote_identifier
from service.keys import hash_key

ROOT = Path(__file__).resolve().parent.parent
DB_HOST = os.environ.get("TEST_DB_HOST", "127.0.0.1")
DB_PORT = int(os.environ.get("TEST_DB_PORT", "3306"))
DB_USER = os.environ.get("TEST_DB_USER", "root")
DB_PASS = os.environ.get("TEST_DB_PASS", "")
# The key hash secret of every database this harness creates (tests, benchmark, evidence): never
# a production value; the upgrade refuses the public sample one.
TEST_SECRET = "tests-only-key-hash-secret-0123456789abcdef"
DB_SETTINGS = {
    "DB_HOST": DB_HOST,
    "DB_PORT": DB_PORT,
    "DB_USER": DB_USER,
    "DB_PASS": DB_PASS,
    "KEY_HASH_SECRET": TEST_SECRET,
}
# Settings the tests pass explicitly, so a developer's .env never leaks into a run.
BASE_SETTINGS = {
    **DB_SETTINGS,
    "DB_TIME_ZONE": "",
    "TRUSTED_PROXIES": 0,
    "AUDIT_FLUSH_INTERVAL": 0.2,
    "LOG_LEVEL": "INFO",
}


def key_hash(key: str, secret: str = TEST_SECRET) -> str:
    """The stored hash of a key, as the service computes it (the one function, service/keys.py)."""
    return hash_key(key, secret)


def upgrade_context(**overrides) -> legacy_upgrade.Context:
    return legacy_upgrade.Context(**{"secret": TEST_SECRET, **overrides})


def node_connection(port: int, database: str | None = None, **kwargs) -> pymysql.Connection:
    """Root on a node of the development Galera cluster (scripts/galera: loopback, no password)."""
    return root_connection(
        database, host="127.0.0.1", port=port, user="root", password="", **kwargs
    )


def mysql_client(database: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the `mariadb` command-line client on the test server (the
    password in MYSQL_PWD, never on the command line)."""
    argv = ["mariadb", "--protocol=tcp", "-h", DB_HOST, "-P", str(DB_PORT), "-u", DB_USER]
    return [*argv, *args, database], {**os.environ, "MYSQL_PWD": DB_PASS}


def root_connection(
    database: str | None = None,
    *,
    user: str = DB_USER,
    password: str = DB_PASS,
    host: str = DB_HOST,
    port: int = DB_PORT,
    **kwargs,
) -> pymysql.Connection:
    """A connection to the test server (or another one: a Galera node), as root unless another
    account is given."""
    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        cursorclass=pymysql.cursors.DictCursor,
        **kwargs,
    )


def new_database_name(prefix: str = "t") -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}_{worker}_{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def fresh_database(
    *, migrate: bool = True, sample: bool = False, prefix: str = "t", keep: bool = False
) -> Iterator[str]:
    """Create a database (migrated, with the sample data if asked), yield its name, drop it
    (unless `keep`: to look into it after a benchmark)."""
    name = new_database_name(prefix)
    conn = root_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE " + quote_identifier(name) + " CHARACTER SET utf8mb4")
        if migrate:
            db_conn = root_connection(name)
            try:
                migrations.migrate(db_conn, upgrade_context(), log=lambda _line: None)
                if sample:
                    migrations.load_sample_data(db_conn, TEST_SECRET)
            finally:
                db_conn.close()
        yield name
    finally:
        if not keep:
            with conn.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS " + quote_identifier(name))
        conn.close()


class Sql:
    """Root access to a test database for arranging and asserting."""

    def __init__(self, database: str):
        self.database = database
        self.conn = root_connection(database)

    def all(self, statement: str, params=None) -> list[dict]:
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    def one(self, statement: str, params=None) -> dict | None:
        rows = self.all(statement, params)
        return rows[0] if rows else None

    def value(self, statement: str, params=None):
        row = self.one(statement, params)
        return None if row is None else next(iter(row.values()))

    def run(self, statement: str, params=None) -> int:
        with self.conn.cursor() as cur:
            return cur.execute(statement, params)

    def dump(self) -> str:
        """Every row of every table and view, as text: for secret scans."""
        parts = []
        for row in self.all("SHOW FULL TABLES"):
            table = next(iter(row.values()))
            for data in self.all(f"SELECT * FROM `{table}`"):
                parts.append(f"{table}: {data!r}")
        return "\n".join(parts)

    def close(self) -> None:
        self.conn.close()


def make_app(database: str, **overrides):
    app = create_app({**BASE_SETTINGS, "DB_NAME": database, **overrides})
    # Every response a test receives is held to docs/openapi.yaml (tests/openapi_check.py; a
    # test requirement, imported here so the benchmark and evidence scripts need none).
    from openapi_check import ValidatingClient

    app.test_client_class = ValidatingClient
    return app


def close_app(app) -> None:
    """Shut an app down as a worker would: audit rows flushed, connections closed."""
    app.extensions["audit"].close(timeout=2)
    app.extensions["db"].discard()


@contextlib.contextmanager
def shared_app(**overrides) -> Iterator[tuple]:
    """A sample database and an app on it, for a module's read-only tests (module fixtures).

    Creating and migrating a database per test dominates the run time; tests that only read (and
    use key_DEF456, whose quota is large) can share one.
    """
    with fresh_database(sample=True) as name:
        app = make_app(name, **overrides)
        sql = Sql(name)
        try:
            yield app, sql
        finally:
            sql.close()
            close_app(app)


def invoke(app, *args: str):
    """Run a `flask --app service` command through Flask's test runner, as `runner.invoke` does."""
    return app.test_cli_runner().invoke(args=list(args))


def flush_audit(app) -> None:
    assert app.extensions["audit"].flush(), "audit rows could not be written"


# ---------------------------------------------------------------------------------------------
# The real service: scripts/serve (gunicorn) on a free loopback port.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A server process (scripts/serve unless told otherwise) on a loopback port, its output in
    a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path, ready_path: str):
        self.name, self.port, self.log_path = name, int(env["PORT"]), log_path
        self.ready_path = ready_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def answers(self, path: str) -> bool:
        """One GET on a fresh connection is answered 200."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the ready path answers 200; RuntimeError with the log if it exits or never does.

        Also the way to know that the server has taken every connection a load generator left
        behind: the accept queue is FIFO, so one answer on a fresh connection means every
        connection queued before it has been accepted by a worker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()  # closes the log
                raise RuntimeError(f"{self.name} exited early:\n{self.log_text()}")
            if self.answers(self.ready_path):
                return
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.log_text()}")

    def workers(self) -> list[int]:
        """The pids of the master's children (gunicorn's workers)."""
        pid = self.process.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        """`sig` (SIGTERM: a graceful stop, every worker flushes its audit buffer), then wait;
        the whole process group is killed if it has not exited within `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


def start_service(
    database: str,
    log_path: Path,
    *,
    workers: int = 2,
    extra_env: dict | None = None,
    settings: dict = BASE_SETTINGS,
    command: list[str] | None = None,
    ready_path: str = "/health",
) -> Served:
    """Start scripts/serve (or `command`, e.g. another app under the same gunicorn configuration)
    on a free port, with `settings` and `extra_env` in its environment, and wait until it answers.

    The caller's DB_* and MONITOR_* variables are left out: only `settings` decide the database.
    """
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DB_", "MONITOR_", "BENCH_"))},
        **{k: str(v) for k, v in settings.items()},
        "DB_NAME": database,
        "PORT": str(free_port()),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(workers),
        # The venv's python first on PATH, as scripts/serve expects.
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        **{k: str(v) for k, v in (extra_env or {}).items()},
    }
    name = "scripts/serve" if command is None else " ".join(command[-1:])
    served = Served(name, command or [str(ROOT / "scripts" / "serve")], env, log_path, ready_path)
    served.wait_ready()
    return served


# ---------------------------------------------------------------------------------------------
# A TCP relay between the service and MariaDB that a test can cut and restore: "the database
# goes away mid-run" without touching the shared server. With a delay, it is also "a slow
# endpoint" in front of the service (scripts/evidence.py).


class TcpRelay:
    def __init__(
        self, target_host: str = DB_HOST, target_port: int = DB_PORT, *, delay: float = 0.0
    ):
        """Relay 127.0.0.1:self.port to the target; each connection waits `delay` seconds before
        anything it sent reaches the target."""
        self.target = (target_host, target_port)
        self.delay = delay
        self.port = free_port()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    close = cut

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.delay:
                threading.Thread(target=self._connect, args=(client,), daemon=True).start()
            else:
                self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self._pairs.append((client, upstream))
        connection: dict = {}  # what passing() keeps about this connection, both ways
        for src, dst, answer in ((client, upstream, False), (upstream, client, True)):
            threading.Thread(
                target=self._pump, args=(src, dst, answer, connection), daemon=True
            ).start()

    def passing(self, data: bytes, *, answer: bool, connection: dict) -> None:
        """Called with each chunk before it is passed on (`answer`: it comes from the target); a
        subclass may hold it here, e.g. to delay the answer to one kind of statement."""

    def _pump(self, src: socket.socket, dst: socket.socket, answer: bool, connection: dict) -> None:
        try:
            while data := src.recv(65536):
                self.passing(data, answer=answer, connection=connection)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def dechunk(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body, which must be whole: every chunk framed by its
    CRLF and the terminating chunk last."""
    out, rest = bytearray(), body
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", "the terminating chunk ends the transfer"
            return bytes(out)
        out += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll until predicate() is truthy; returns its value or fails the test."""
    import pytest  # here, so that the scripts using this harness need only the runtime packages

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


@contextlib.contextmanager
def host_tz(name: str) -> Iterator[None]:
    """Run with the process's local time zone set to `name` (as a host's TZ would)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
