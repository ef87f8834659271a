"""What the edge does to every request through the real nginx (scripts/proxy) in front of two
instances on one database: request ids that join nginx's log, the service's log and the audit
trail; the real client address; nginx's own errors in the API's JSON shape; the service's headers
passed through unchanged."""

from __future__ import annotations

import http.client
import json
import re
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from proxykit import proxy_stack

from service.quota import RETRY_JITTER_SECONDS
from testkit import dechunk, wait_until

pytestmark = [pytest.mark.proxy, pytest.mark.xdist_group("proxy_edge")]

LIMIT = 4 * 1024 * 1024  # MAX_BODY_BYTES of this module's instances and proxy
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    limit = {"MAX_BODY_BYTES": str(LIMIT)}
    with proxy_stack(tmp_path_factory.mktemp("edge"), service_env=limit, proxy_env=limit) as s:
        yield s


@pytest.fixture(scope="module")
def reader(stack) -> dict[str, str]:
    return {"X-API-Key": stack.add_key("export,audit")}


def raw_exchange(
    port: int, head: str, body_chunks=(), source: str = "127.0.0.1", timeout: float = 10
) -> bytes:
    """Send a request as raw bytes (the body may be cut short by the server) and read the answer
    (empty if the server closes the connection without one)."""
    address = ("127.0.0.1", port)
    with socket.create_connection(address, timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(head.encode())
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:
            pass  # nginx may answer and close before the whole body is sent: that is the point
        answer = b""
        while not complete(answer):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:  # after a 413 nginx resets once it stops waiting
                break
            if not chunk:
                break
            answer += chunk
        return answer


def complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(found and length and len(body) >= int(length.group(1)))


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(lines[0].split()[1]), headers, body


def assert_json_error(status: int, headers: dict, body: bytes, code: str) -> None:
    assert headers["content-type"].startswith("application/json"), headers
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"], error
    assert HEX32.match(headers["x-request-id"]), headers


def import_head(key: str, extra: str) -> str:
    return (
        "POST /api/import HTTP/1.1\r\nHost: proxy.test\r\n"
        f"X-API-Key: {key}\r\nContent-Type: application/json\r\n{extra}Connection: close\r\n\r\n"
    )


def test_a_declared_body_over_the_limit_gets_the_json_413_from_nginx_and_no_worker_sees_it(stack):
    importer = stack.add_key("import")
    answer = raw_exchange(
        stack.proxy.port, import_head(importer, f"Content-Length: {LIMIT + 1}\r\n")
    )
    status, headers, body = parse(answer)
    assert status == 413
    assert_json_error(status, headers, body, "payload_too_large")
    entry = stack.proxy.entry_for(headers["x-request-id"])
    assert entry["status"] == 413 and entry["upstream"] == ""  # never passed to an instance
    assert stack.calls_made(importer) == 0
    assert stack.audit_rows(importer) == []


def test_a_chunked_body_that_grows_over_the_limit_gets_the_json_413_too(stack):
    importer = stack.add_key("import")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
    chunks = [chunk] * (LIMIT // (64 * 1024) + 2) + [b"0\r\n\r\n"]
    head = import_head(importer, "Transfer-Encoding: chunked\r\n")
    status, headers, body = parse(raw_exchange(stack.proxy.port, head, chunks))
    assert status == 413
    assert_json_error(status, headers, body, "payload_too_large")
    assert stack.proxy.entry_for(headers["x-request-id"])["upstream"] == ""
    assert stack.calls_made(importer) == 0


def test_a_request_that_stops_arriving_is_closed_without_an_answer_and_no_worker_sees_it(stack):
    """nginx's client_header_timeout and client_body_timeout (10 s): it closes such a connection
    and sends nothing (no 408), and the request never reaches an instance."""
    before = len(stack.service_log_lines())
    stalled = {
        "headers": ("GET /api/usage HTTP/1.1\r\nHost: edge\r\n", ()),
        "body": (
            "POST /api/import HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n",
            (b"[{",),
        ),
    }
    with ThreadPoolExecutor(max_workers=len(stalled)) as pool:  # both wait out nginx together
        waiting = {
            name: pool.submit(raw_exchange, stack.proxy.port, head, body, timeout=60)
            for name, (head, body) in stalled.items()
        }
        answers = {name: future.result() for name, future in waiting.items()}
    assert answers == {"headers": b"", "body": b""}
    assert len(stack.service_log_lines()) == before


def test_a_body_within_the_limit_reaches_the_service(stack):
    importer = stack.add_key("import")
    record = {
        "title": "Edge",
        "url": "https://en.wikipedia.org/wiki/Edge_(proxy)",
        "language": "en",
    }
    # Half the limit, over the 1 MB nginx keeps in memory: the body goes through nginx's
    # temporary file, which its (unprivileged) workers must be able to write.
    record |= {"summary": "x" * (LIMIT // 2), "updated_at": "2026-12-01T00:00:00Z"}
    response = requests.post(
        stack.url + "/api/import", json=[record], headers={"X-API-Key": importer}, timeout=20
    )
    # The service decides (this summary is longer than its column: a 400 naming the field).
    entry = stack.proxy.entry_for(response.headers["X-Request-ID"])
    assert entry["upstream"] and entry["upstream_status"] == str(response.status_code)
    assert response.status_code in (200, 400), response.text
    assert response.headers["Content-Type"].startswith("application/json")


def test_nginx_request_id_joins_its_log_line_the_service_log_line_and_the_audit_row(stack, reader):
    response = requests.get(
        stack.url + "/api/export?limit=1",
        headers={**reader, "X-Request-ID": "0" * 32},  # the edge's id wins over a client's
        timeout=10,
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert HEX32.match(request_id) and request_id != "0" * 32
    entry = stack.proxy.entry_for(request_id)
    assert entry["path"] == "/api/export" and entry["status"] == 200
    rows = wait_until(
        lambda: stack.sql.all("SELECT * FROM audit_logs WHERE request_id = %s", (request_id,)),
        timeout=5,
    )
    assert len(rows) == 1 and rows[0]["endpoint"] == "/api/export"
    assert rows[0]["response_code"] == 200
    logged = wait_until(
        lambda: [line for line in stack.service_log_lines() if line.get("request_id") == request_id]
    )
    assert len(logged) == 1 and logged[0]["status"] == 200


def test_the_real_client_address_reaches_both_logs_and_a_forged_forwarded_for_changes_nothing(
    stack, reader
):
    # The client connects from 127.0.0.2, nginx from 127.0.0.1: the two are told apart.
    connection = http.client.HTTPConnection(
        "127.0.0.1", stack.proxy.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    forged = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Real-IP": "203.0.113.9"}
    connection.request("GET", "/api/export?limit=1", headers={**reader, **forged})
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 200
    request_id = response.getheader("X-Request-ID")
    assert stack.proxy.entry_for(request_id)["remote_addr"] == "127.0.0.2"
    logged = wait_until(
        lambda: [line for line in stack.service_log_lines() if line.get("request_id") == request_id]
    )
    assert logged[0]["remote_addr"] == "127.0.0.2"
    # The audit row has no address column (the contract lists its columns; an address is personal
    # data): it joins the two log lines above by its request id.
    assert wait_until(
        lambda: stack.sql.value(
            "SELECT COUNT(*) FROM audit_logs WHERE request_id = %s", (request_id,)
        )
    )


def test_without_the_proxy_the_forged_header_would_have_been_believed(stack, reader):
    """Why the instances must be reachable only through nginx: with TRUSTED_PROXIES=1 an instance
    believes the last X-Forwarded-For hop. nginx replaces the header; a direct client is not
    stopped. (docker-compose.yml publishes only nginx.)"""
    direct = stack.instances[0].url
    response = requests.get(
        direct + "/api/export?limit=1",
        headers={**reader, "X-Forwarded-For": "203.0.113.9"},
        timeout=10,
    )
    request_id = response.headers["X-Request-ID"]
    logged = wait_until(
        lambda: [line for line in stack.service_log_lines() if line.get("request_id") == request_id]
    )
    assert logged[0]["remote_addr"] == "203.0.113.9"


HOP_BY_HOP = {"date", "server", "connection", "keep-alive", "transfer-encoding", "x-request-id"}
# Seconds until the reset: they tick between the two requests (a loaded machine may take a few);
# X-RateLimit-Reset, the absolute instant, must be identical.
TOLERANCE = 10


def comparable(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


def assert_same_headers(proxied, direct) -> None:
    a, b = comparable(proxied.headers), comparable(direct.headers)
    assert set(a) == set(b), set(a) ^ set(b)
    for name in a:
        if name == "retry-after":  # seconds to the reset plus the service's own jitter
            seconds_to_reset = int(a["ratelimit"].rsplit("=", 1)[1])
            assert 0 <= int(a[name]) - seconds_to_reset <= RETRY_JITTER_SECONDS
        elif name == "ratelimit":  # "daily";r=0;t=SECONDS
            assert a[name].rsplit("=", 1)[0] == b[name].rsplit("=", 1)[0]
            assert abs(int(a[name].rsplit("=", 1)[1]) - int(b[name].rsplit("=", 1)[1])) <= TOLERANCE
        else:
            assert a[name] == b[name], name
    if "retry-after" not in a:
        assert proxied.content == direct.content
    else:  # the message says when the quota resets, in the same words
        assert proxied.json()["error"]["reset_at"] == direct.json()["error"]["reset_at"]


def test_quota_headers_and_retry_after_pass_through_unchanged(stack):
    key = {"X-API-Key": stack.add_key("export", daily_limit=2)}
    admitted = [requests.get(stack.url + "/api/export?limit=1", headers=key, timeout=10)]
    assert admitted[0].status_code == 200
    for name in (
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Used",
        "X-RateLimit-Reset",
        "RateLimit-Policy",
        "RateLimit",
    ):
        assert admitted[0].headers[name], name
    assert admitted[0].headers["X-RateLimit-Remaining"] == "1"
    assert requests.get(stack.url + "/api/export?limit=1", headers=key, timeout=10).ok
    proxied = requests.get(stack.url + "/api/export?limit=1", headers=key, timeout=10)
    direct = requests.get(stack.instances[1].url + "/api/export?limit=1", headers=key, timeout=10)
    assert proxied.status_code == direct.status_code == 429
    assert int(proxied.headers["Retry-After"]) > 0
    assert_same_headers(proxied, direct)


def test_www_authenticate_passes_through_unchanged(stack):
    proxied = requests.get(stack.url + "/api/export", timeout=10)
    direct = requests.get(stack.instances[0].url + "/api/export", timeout=10)
    assert proxied.status_code == direct.status_code == 401
    assert proxied.headers["WWW-Authenticate"] == 'Bearer realm="export", charset="UTF-8"'
    assert_same_headers(proxied, direct)


def test_metrics_are_not_served_on_the_public_side(stack):
    response = requests.get(stack.url + "/metrics", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such route."}}
