"""Fixtures for the service monitor tests: fake servers on free local ports,
a subprocess runner for scripts/service_monitor.py and the report schema.

Everything binds 127.0.0.1 port 0, so the tests can run in parallel (xdist).
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "service_monitor.py"
SCHEMA_PATH = REPO_ROOT / "monitoring" / "report.schema.json"

# The monitor is a script, not a package: make it importable for unit tests.
if str(SCRIPT.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent))


def _canary() -> str:
    return "canary_" + uuid.uuid4().hex


# ---------------------------------------------------------------------------
# A well-behaved fake API (http.server), configurable per route
# ---------------------------------------------------------------------------

Body = bytes | Callable[[str], bytes]


@dataclass
class Route:
    status: int = 200
    body: Body = b""
    content_type: str = "application/json"
    delay: float = 0.0
    reason: str | Callable[[str], str] | None = None


ROUTE_PATHS = {"health": "/health", "export": "/api/export", "audit": "/api/audit"}


def healthy_routes() -> dict[str, Route]:
    return {
        "/health": Route(body=b"OK", content_type="text/plain"),
        "/api/export": Route(body=b'{"data": [{"id": 1}], "next": null}'),
        "/api/audit": Route(body=b'{"events": []}'),
    }


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    client_port: int


class FakeAPI:
    """ThreadingHTTPServer that, like the real service, answers 401 on /api/*
    without the right X-API-Key, so a passing check proves the key was sent."""

    def __init__(self, key: str, routes: dict[str, Route] | None = None) -> None:
        self.key = key
        self.routes = healthy_routes() if routes is None else routes
        self.seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with api._lock:
                    api.seen.append(
                        SeenRequest(self.path, dict(self.headers.items()), self.client_address[1])
                    )
                route = api.routes.get(self.path)
                if route is None:
                    self._reply(404, b'{"error": "not found"}', "application/json", None)
                    return
                if self.path.startswith("/api/") and self.headers.get("X-API-Key") != api.key:
                    self._reply(
                        401, b'{"error": "missing or wrong API key"}', "application/json", None
                    )
                    return
                if route.delay:
                    time.sleep(route.delay)
                body = route.body(api.key) if callable(route.body) else route.body
                reason = route.reason(api.key) if callable(route.reason) else route.reason
                self._reply(route.status, body, route.content_type, reason)

            def _reply(self, status: int, body: bytes, ctype: str, reason: str | None) -> None:
                self.send_response(status, reason)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_route(self, name: str, **route: Any) -> None:
        """set_route("health", body=b"OK"): change how one route answers from now on."""
        self.routes[ROUTE_PATHS[name]] = Route(**route)

    def requests_for(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.seen if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# A raw socket server for misbehaviour http.server cannot produce
# ---------------------------------------------------------------------------


def read_request(conn: socket.socket, stop: threading.Event) -> tuple[str, dict[str, str]] | None:
    """Read one request head; returns (path, headers) or None."""
    conn.settimeout(0.2)
    data = b""
    while b"\r\n\r\n" not in data and not stop.is_set():
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    if b"\r\n\r\n" not in data:
        return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = head[0].split(" ")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return (parts[1] if len(parts) > 1 else "/"), headers


def http_response(status: int, body: bytes, ctype: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


Behaviour = Callable[["RawServer", socket.socket], None]


@dataclass
class RawServer:
    behaviour: Behaviour
    key: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    state: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    conns: list[socket.socket] = field(default_factory=list)
    first_accept: float = 0.0  # time.monotonic() of the first connection

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
                self.first_accept = self.first_accept or time.monotonic()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.behaviour(self, conn)
        except OSError:
            pass  # the client gave up: expected in deadline tests
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.close()
        self.thread.join(timeout=1)


def hang(server: RawServer, conn: socket.socket) -> None:
    """Accept, read the request, never answer."""
    read_request(conn, server.stop)
    server.stop.wait()


def drip_body(server: RawServer, conn: socket.socket) -> None:
    """Send headers at once, then one body byte every 100 ms, for ever."""
    if read_request(conn, server.stop) is None:
        return
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    while not server.stop.wait(0.1):
        conn.sendall(b"O")


def drip_headers(server: RawServer, conn: socket.socket) -> None:
    """Send the status line, then a header one byte every 100 ms, for ever."""
    if read_request(conn, server.stop) is None:
        return
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not server.stop.wait(0.1):
        conn.sendall(b"a")


def reset_first_then_serve(server: RawServer, conn: socket.socket) -> None:
    """Per path, the first connection is reset (RST) after the request was
    read; later ones get a correct answer (401 without the key)."""
    request = read_request(conn, server.stop)
    if request is None:
        return
    path, headers = request
    with server.lock:
        first = path not in server.state
        server.state[path] = server.state.get(path, 0) + 1
    if first:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return  # _serve closes it: with linger 0 that sends RST
    if path.startswith("/api/") and headers.get("x-api-key") != server.key:
        conn.sendall(http_response(401, b'{"error": "no key"}'))
        return
    route = healthy_routes()[path]
    assert isinstance(route.body, bytes)
    conn.sendall(http_response(200, route.body, route.content_type))


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def api_key() -> str:
    return _canary()


@pytest.fixture
def make_api(api_key: str) -> Iterator[Callable[..., FakeAPI]]:
    servers: list[FakeAPI] = []

    def make(**overrides: dict[str, Any]) -> FakeAPI:
        """make(export={"status": 500, "body": b"{}"}) replaces one route."""
        table = healthy_routes()
        for name, route in overrides.items():
            table[ROUTE_PATHS[name]] = Route(**route)
        server = FakeAPI(api_key, table)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


BEHAVIOURS: dict[str, Behaviour] = {
    "hang": hang,
    "drip_body": drip_body,
    "drip_headers": drip_headers,
    "reset_first_then_serve": reset_first_then_serve,
}


@pytest.fixture
def make_raw(api_key: str) -> Iterator[Callable[[str], RawServer]]:
    servers: list[RawServer] = []

    def make(behaviour: str | Behaviour) -> RawServer:
        """make("hang"), or make(function(server, conn)) for a behaviour of the test's own."""
        server = RawServer(
            BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour, key=api_key
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound but not listening: connections are refused, and
    holding it means no other test can start listening there meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture(scope="session")
def report_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def validator(report_schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(report_schema)
    return Draft202012Validator(report_schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@dataclass
class MonitorRun:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    ended: float  # time.monotonic() when the process had exited
    report_dir: Path
    junit: Path | None

    @property
    def report_paths(self) -> list[Path]:
        return sorted(self.report_dir.glob("report-*.json"))

    @property
    def report(self) -> dict[str, Any]:
        """The newest report (names sort by time)."""
        paths = [p for p in self.report_paths if p.name[7:15].isdigit()]
        assert paths, f"no report written; stdout={self.stdout!r} stderr={self.stderr!r}"
        return json.loads(paths[-1].read_text(encoding="utf-8"))

    def check(self, name: str) -> dict[str, Any]:
        return next(c for c in self.report["checks"] if c["name"] == name)

    def codes(self, name: str) -> list[str]:
        return [r["code"] for r in self.check(name)["reasons"]]


# Every MONITOR_* variable the monitor reads.
MONITOR_VARIABLES = (
    "MONITOR_API_KEY",
    "MONITOR_BASE_URL",
    "MONITOR_THRESHOLD_MS",
    "MONITOR_TIMEOUT_MS",
    "MONITOR_RUN_TIMEOUT_MS",
    "MONITOR_RETRIES",
    "MONITOR_REPORT_DIR",
    "MONITOR_JUNIT",
    "MONITOR_PROMETHEUS_FILE",
)


def _clean_env(*, dotenv: bool = False, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    if not dotenv:
        # Set but empty (= the default), so a developer's own .env in the project, which the
        # monitor reads, cannot change these runs: the environment wins over .env.
        env.update(dict.fromkeys(MONITOR_VARIABLES, ""))
    env.update(extra)
    return env


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """clean_env(MONITOR_X="1"): the environment with no MONITOR_* but these (the others set
    empty, which masks .env); clean_env(dotenv=True, ...) leaves them unset, so .env counts."""
    return _clean_env


@pytest.fixture
def monitor_project(tmp_path: Path) -> Path:
    """A copy of the monitor alone in a project folder (scripts/ and an empty monitoring/):
    no service/, no .env, no reports, as on a host that only runs the monitor."""
    project = tmp_path / "project"
    shutil.copytree(
        SCRIPT.parent / "wme_monitor",
        project / "scripts" / "wme_monitor",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(SCRIPT, project / "scripts" / SCRIPT.name)
    (project / "monitoring").mkdir()
    return project


@pytest.fixture
def run_monitor(tmp_path: Path, api_key: str) -> Callable[..., MonitorRun]:
    """Run the script as a subprocess (cwd tmp_path); reports go to
    report_dir (default tmp_path/reports) unless add_report_dir is False."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        report_dir: Path | None = None,
        add_report_dir: bool = True,
        junit: bool = False,
        timeout: float = 30,
        script: Path = SCRIPT,
        cwd: Path | None = None,
    ) -> MonitorRun:
        argv = [sys.executable, str(script), *args]
        directory = report_dir or tmp_path / "reports"
        if add_report_dir:
            argv += ["--report-dir", str(directory)]
        junit_path = tmp_path / "junit.xml" if junit else None
        if junit_path is not None:
            argv += ["--junit", str(junit_path)]
        environment = _clean_env(MONITOR_API_KEY=api_key) if env is None else env
        start = time.monotonic()
        proc = subprocess.run(
            argv,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or tmp_path,
            check=False,
        )
        ended = time.monotonic()
        return MonitorRun(
            proc.returncode, proc.stdout, proc.stderr, ended - start, ended, directory, junit_path
        )

    return run
