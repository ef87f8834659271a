"""Raw, malformed requests over a socket to the real service (gunicorn, two workers): no response
and no log line, the service's or gunicorn's, holds more than six characters of a key; a broken
chunked body is a 400 that names the framing, writes nothing and costs nothing."""

from __future__ import annotations

import re
import socket
import time

import pytest

from testkit import Sql, key_hash

pytestmark = [pytest.mark.e2e]

NEW_KEY = "wk_" + "Qz7" * 10 + "Kp"  # a real key of this database (created below)
LEGACY = "key_ABC123"
# Any 7 or more characters of either key: a leak.
LEAK = re.compile(re.escape(NEW_KEY[:7]) + "|" + re.escape(LEGACY[:7]))


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes; read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        with_shutdown = raw.endswith(b"\r\n\r\n") or raw.endswith(b"0\r\n\r\n")
        if with_shutdown:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


MALFORMED = {
    "bad request line": f"GET  /api/export?api_key={NEW_KEY} HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad request line, legacy key": f"GET /api/export?k={LEGACY} HTTP/9\r\nHost: x\r\n\r\n",
    "header without a colon": f"GET /api/export HTTP/1.1\r\nHost: x\r\nX-API-Key {NEW_KEY}\r\n\r\n",
    "header name with a key": f"GET /api/export HTTP/1.1\r\nHost: x\r\n{NEW_KEY}(: 1\r\n\r\n",
    "unknown method": f"{NEW_KEY} /api/export HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown method, upper case": f"X{NEW_KEY.upper()} /api/export HTTP/1.1\r\nHost: x\r\n\r\n",
    "request line too long": f"GET /api/export?{NEW_KEY}={'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad chunk size on a GET": (
        f"GET /api/export?{NEW_KEY}=1 HTTP/1.1\r\nHost: x\r\nX-API-Key: {LEGACY}\r\n"
        f"Transfer-Encoding: chunked\r\n\r\nzz{NEW_KEY}\r\nabc\r\n0\r\n\r\n"
    ),
    "key as a parameter name": f"GET /api/export?{NEW_KEY}=1 HTTP/1.1\r\nHost: x\r\n"
    f"X-API-Key: {LEGACY}\r\nConnection: close\r\n\r\n",
    "key in the path": f"GET /api/{NEW_KEY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
}


def bad_chunked_import(key: str) -> bytes:
    head = (
        f"POST /api/import HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    return (head + f"5\r\n[{{}}, \r\nzz{NEW_KEY}\r\n{{}}]\r\n0\r\n\r\n").encode()


@pytest.fixture
def served(sample_database, serve):
    sql = Sql(sample_database)
    sql.run(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit, calls_made, "
        "is_valid) VALUES (1, %s, LEFT(%s, 6), 'export,import', 100, 0, 1)",
        (key_hash(NEW_KEY), NEW_KEY),
    )
    instance = serve(sample_database, workers=2)
    yield instance, sql
    sql.close()


def test_malformed_requests_never_echo_a_key_in_answers_or_logs(served):
    instance, _sql = served
    answers = {name: exchange(instance.port, raw.encode()) for name, raw in MALFORMED.items()}
    for name, answer in answers.items():
        text = answer.decode("latin-1")
        assert text.startswith("HTTP/1.1 4"), (name, text[:300])
        assert not LEAK.search(text), (name, text)
    assert b"InvalidRequestLine" in answers["bad request line"]
    assert b"application/json" in answers["header without a colon"]
    assert b"invalid parameter 'wk_Qz7...'" in answers["key as a parameter name"]
    instance.stop()
    log = instance.log_text()
    assert "Invalid request from ip=" in log, "gunicorn's warnings are kept, masked"
    leaks = [line for line in log.splitlines() if LEAK.search(line)]
    assert leaks == []


@pytest.mark.parametrize("key", [NEW_KEY, LEGACY])
def test_a_chunk_size_that_is_not_hex_is_a_400_naming_the_framing(served, key):
    instance, sql = served
    before = sql.value("SELECT COUNT(*) FROM articles")
    used = sql.all("SELECT id, calls_made FROM api_keys ORDER BY id")
    answer = exchange(instance.port, bad_chunked_import(key)).decode("latin-1")
    assert answer.startswith("HTTP/1.1 400"), answer[:400]
    assert "framing" in answer and "chunk" in answer
    assert not LEAK.search(answer)
    assert sql.value("SELECT COUNT(*) FROM articles") == before
    assert sql.all("SELECT id, calls_made FROM api_keys ORDER BY id") == used
    instance.stop()
    assert "Traceback" not in instance.log_text()
    assert not LEAK.search(instance.log_text())
