"""One GET on a fresh connection, finished or abandoned by a hard deadline.

`requests`' timeout bounds each socket operation, not a whole response: a server that drips a byte
every 100 ms never trips it. So the body is streamed with the deadline checked between chunks, and a
watchdog shuts the socket down at the deadline for a read that never returns.
"""

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass

import requests

USER_AGENT = "wme-service-monitor/1.0"
CHUNK_SIZE = 16 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024  # the body is held in memory for validation
ABORT_GRACE_S = 0.05  # how long to let an aborted request unwind before moving on


class DeadlineExceeded(Exception):
    """Raised between body chunks when the per-attempt deadline has passed."""


class BodyTooLarge(Exception):
    """The body exceeded MAX_BODY_BYTES."""


@dataclass
class Observation:
    """What one HTTP attempt saw, before judging it."""

    elapsed_ms: float
    http_status: int | None = None
    reason_phrase: str = ""
    ttfb_ms: float | None = None
    total_ms: float | None = None  # only set when the whole body arrived
    body: bytes | None = None
    nbytes: int = 0
    error: BaseException | None = None
    deadline_hit: bool = False


def _tls_verify() -> bool | str:
    # Sessions ignore the environment (proxies, .netrc); keep the CA bundle
    # variables requests would normally honour.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _response_socket(response: requests.Response) -> socket.socket | None:
    raw = getattr(response, "raw", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shutdown(response: requests.Response) -> None:
    # shutdown() (unlike close()) wakes a recv() blocked in another thread.
    sock = _response_socket(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _AttemptContext:
    """Shared between an attempt's worker thread and its watchdog."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.aborted = False
        self.response: requests.Response | None = None
        self.t_headers: float | None = None
        self.t_end: float | None = None
        self.status: int | None = None
        self.reason_phrase = ""
        self.chunks: list[bytes] = []
        self.nbytes = 0
        self.error: BaseException | None = None

    def set_response(self, response: requests.Response) -> None:
        with self.lock:
            self.response = response
            aborted = self.aborted
        if aborted:
            _shutdown(response)

    def abort(self) -> None:
        with self.lock:
            self.aborted = True
            response = self.response
        if response is not None:
            _shutdown(response)


def _attempt_worker(
    ctx: _AttemptContext, url: str, headers: dict[str, str], deadline: float
) -> None:
    session = requests.Session()
    session.trust_env = False
    response = None
    try:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise DeadlineExceeded()
        # requests' timeout bounds each socket operation; the deadline checks
        # below and the watchdog in perform_attempt bound the whole attempt.
        response = session.get(
            url,
            headers=headers,
            timeout=(remaining, remaining),
            stream=True,
            allow_redirects=False,  # a redirect must not carry the key elsewhere
            verify=_tls_verify(),
        )
        ctx.t_headers = time.perf_counter()
        ctx.status = response.status_code
        ctx.reason_phrase = response.reason or ""
        ctx.set_response(response)
        for chunk in response.iter_content(chunk_size=CHUNK_SIZE):
            ctx.chunks.append(chunk)
            ctx.nbytes += len(chunk)
            if ctx.nbytes > MAX_BODY_BYTES:
                raise BodyTooLarge()
            if time.perf_counter() >= deadline:
                raise DeadlineExceeded()
        ctx.t_end = time.perf_counter()
    except Exception as exc:  # recorded and classified by the caller
        ctx.error = exc
    finally:
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        with contextlib.suppress(Exception):
            session.close()
        ctx.done.set()


def perform_attempt(url: str, headers: dict[str, str], deadline: float) -> Observation:
    """One GET on a fresh session, finished or abandoned by `deadline`
    (a time.perf_counter() value)."""
    ctx = _AttemptContext()
    t0 = time.perf_counter()
    worker = threading.Thread(
        target=_attempt_worker,
        args=(ctx, url, headers, deadline),
        daemon=True,
        name="monitor-attempt",
    )
    worker.start()
    # The watchdog: if the worker is still busy at the deadline (a body that
    # drips forever, a server that never answers), shut its socket down and
    # stop waiting. A worker stuck before it has a response object (headers
    # that trickle in) is simply abandoned: a daemon thread cannot keep the
    # process alive.
    finished = ctx.done.wait(max(0.0, deadline - t0))
    t_cut = time.perf_counter()
    if not finished:
        ctx.abort()
        ctx.done.wait(ABORT_GRACE_S)
    obs = Observation(
        elapsed_ms=(t_cut - t0) * 1000,
        http_status=ctx.status,
        reason_phrase=ctx.reason_phrase,
        ttfb_ms=None if ctx.t_headers is None else (ctx.t_headers - t0) * 1000,
        nbytes=ctx.nbytes,
    )
    if finished and ctx.error is None and ctx.t_end is not None:
        obs.elapsed_ms = obs.total_ms = (ctx.t_end - t0) * 1000
        obs.body = b"".join(ctx.chunks)
    elif finished and ctx.error is not None and not isinstance(ctx.error, DeadlineExceeded):
        obs.error = ctx.error
    else:
        obs.deadline_hit = True
    return obs
