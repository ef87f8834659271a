"""Slow and stalled clients, the reason a sync-worker service sits behind a buffering proxy.

Directly in front of gunicorn, each connection that sends a request line and then nothing holds a
worker until gunicorn's timeout kills it; behind nginx such connections cost nginx a few KB each
and never reach a worker. Both sides are measured and printed (run with -s to see them); the
figures in docs/operations.md come from:

    .venv/bin/pytest -s -n 0 tests/proxy/test_slow_clients.py
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time

import pytest
import requests
from proxykit import BEHIND_ONE_PROXY, gunicorn_workers, proxy_stack

from testkit import start_service

pytestmark = [pytest.mark.proxy, pytest.mark.xdist_group("proxy_slow_clients")]

STALLED = 64
SLOW_BODIES = 8
DIRECT_TIMEOUT = 5  # GUNICORN_TIMEOUT of the instance measured without the proxy
# Generous bounds on a shared machine: the figures printed are the result; these only catch a
# proxy that lets stalls through (then answers take DIRECT_TIMEOUT or never come).
ANSWER_BOUND = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with proxy_stack(tmp_path_factory.mktemp("slow")) as s:
        yield s


@contextlib.contextmanager
def stalled_connections(port: int, count: int):
    """`count` connections that send a request line and then nothing."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/export HTTP/1.1\r\n")
            sockets.append(s)
        yield sockets
    finally:
        for s in sockets:
            s.close()


@contextlib.contextmanager
def slow_bodies(port: int, count: int, key: str):
    """`count` imports whose bodies arrive a few bytes at a time."""
    stop = threading.Event()
    body = b'[{"title":"Slow","url":"https://en.wikipedia.org/wiki/Slow","language":"en",' + (
        b'"summary":"' + b"s" * 4000 + b'","updated_at":"2026-12-01T00:00:00Z"}]'
    )

    def drip() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(
                b"POST /api/import HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                + f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            for start in range(0, len(body), 8):
                if stop.wait(0.25):
                    return
                s.sendall(body[start : start + 8])

    threads = [threading.Thread(target=drip, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def timed_get(url: str, headers=None, timeout: float = 10.0) -> float | None:
    """Seconds to a 200, or None if no answer came within `timeout`."""
    started = time.perf_counter()
    try:
        response = requests.get(url, headers=headers, timeout=timeout)
    except requests.Timeout:
        return None
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def worker_timeouts(served) -> int:
    return served.log_text().count("WORKER TIMEOUT")


def test_directly_in_front_of_gunicorn_stalled_connections_hold_the_workers(stack, tmp_path):
    """The "before" figures: one instance, two workers, no proxy."""
    direct = start_service(
        stack.database,
        tmp_path / "direct.log",
        workers=2,
        extra_env={**BEHIND_ONE_PROXY, "GUNICORN_TIMEOUT": str(DIRECT_TIMEOUT)},
    )
    try:
        with stalled_connections(direct.port, 2):
            time.sleep(0.3)  # both workers have accepted one
            as_many_as_workers = timed_get(direct.url + "/health", timeout=DIRECT_TIMEOUT * 4)
        killed = worker_timeouts(direct)
        with stalled_connections(direct.port, STALLED):
            time.sleep(0.3)
            under_many = timed_get(direct.url + "/health", timeout=3)
    finally:
        direct.stop()
    print(
        f"\nDIRECT (gunicorn, 2 sync workers, GUNICORN_TIMEOUT={DIRECT_TIMEOUT}):"
        f"\n  2 stalled connections: /health answered after {as_many_as_workers:.2f} s;"
        f" gunicorn killed {killed} workers"
        f"\n  {STALLED} stalled connections: /health "
        + ("no answer within 3 s" if under_many is None else f"answered after {under_many:.2f} s")
    )
    # The baseline the proxy must beat: the stall lasts until gunicorn kills the workers.
    assert as_many_as_workers is not None and as_many_as_workers > DIRECT_TIMEOUT * 0.8
    assert killed >= 1
    assert under_many is None


def test_through_nginx_stalled_connections_and_slow_bodies_never_reach_a_worker(stack):
    key = {"X-API-Key": stack.add_key("export,import")}
    workers_before = {served.port: sorted(gunicorn_workers(served)) for served in stack.instances}
    health: list[float | None] = []
    exports: list[float | None] = []
    with (
        stalled_connections(stack.proxy.port, STALLED),
        slow_bodies(stack.proxy.port, SLOW_BODIES, key["X-API-Key"]),
    ):
        time.sleep(0.5)  # every stalled request has reached nginx
        for _ in range(20):
            health.append(timed_get(stack.url + "/health", timeout=5))
            exports.append(timed_get(stack.url + "/api/export?limit=10", headers=key, timeout=5))
            time.sleep(0.05)
    workers_after = {served.port: sorted(gunicorn_workers(served)) for served in stack.instances}
    killed = sum(worker_timeouts(served) for served in stack.instances)
    answered_health = [t * 1000 for t in health if t is not None]
    answered_exports = [t * 1000 for t in exports if t is not None]
    print(
        f"\nTHROUGH NGINX (2 instances x 2 sync workers, GUNICORN_TIMEOUT=60):"
        f"\n  {STALLED} stalled connections + {SLOW_BODIES} slow bodies held:"
        f"\n  /health: {len(answered_health)}/20 answered, median"
        f" {statistics.median(answered_health):.1f} ms, max {max(answered_health):.1f} ms"
        f"\n  /api/export?limit=10: {len(answered_exports)}/20 answered, median"
        f" {statistics.median(answered_exports):.1f} ms,"
        f" max {max(answered_exports):.1f} ms"
        f"\n  gunicorn workers killed: {killed}"
    )
    assert None not in health and None not in exports
    assert max(health) < ANSWER_BOUND and max(exports) < ANSWER_BOUND
    assert killed == 0
    assert workers_after == workers_before  # the same worker processes, none replaced
