"""The database goes away in the middle of an NDJSON export, against the real service: the client
sees a broken transfer at once (the connection closes without the terminating chunk), and the
audit row records the failure (503 db_unavailable), not a 200."""

from __future__ import annotations

import re
import socket
import time

import pytest

from testkit import Sql, TcpRelay, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROWS = 100_000
DIGITS = " UNION ALL ".join(f"SELECT {n} AS n" for n in range(10))


def add_articles(sql: Sql) -> None:
    sql.run(
        "INSERT INTO articles (title, url, language, summary, updated_at) "
        "SELECT CONCAT('Bulk ', n), CONCAT('https://en.wikipedia.org/wiki/Bulk_', n), 'en', "
        "REPEAT('s', 150), '2026-01-01 00:00:00' FROM ("
        f"SELECT a.n + 10 * b.n + 100 * c.n + 1000 * d.n + 10000 * e.n AS n "
        f"FROM ({DIGITS}) a, ({DIGITS}) b, ({DIGITS}) c, ({DIGITS}) d, ({DIGITS}) e) numbers"
    )


def test_database_lost_mid_stream_breaks_the_transfer_and_is_audited(sample_database, serve):
    sql = Sql(sample_database)
    add_articles(sql)
    relay = TcpRelay()
    served = serve(sample_database, workers=1, extra_env={"DB_PORT": str(relay.port)})
    try:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        sock.sendall(
            b"GET /api/export?format=ndjson HTTP/1.1\r\nHost: x\r\nX-API-Key: key_DEF456\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1024)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"transfer-encoding: chunked" in head.lower()
        request_id = re.search(rb"X-Request-ID: (\w+)", head).group(1).decode()

        relay.cut()  # the database goes away while the service is still streaming
        cut_at = time.monotonic()
        body = bytearray(head.split(b"\r\n\r\n", 1)[1])
        while chunk := sock.recv(65536):  # EOF: the server closed the connection
            body += chunk
        closed_after = time.monotonic() - cut_at
        sock.close()
        lines = body.count(b"\n")
        print(f"connection closed {closed_after:.2f} s after the cut; {len(body)} bytes received")
        assert not body.endswith(b"0\r\n\r\n"), "the transfer must not look complete"
        assert lines < ROWS, "the stream was cut, not finished"
        assert closed_after < 15, "a broken transfer shows at once, never a hang"

        relay.restore()
        row = wait_until(
            lambda: sql.one(
                "SELECT response_code, error_code FROM audit_logs WHERE request_id = %s",
                (request_id,),
            ),
            timeout=30,
        )
        assert row == {"response_code": 503, "error_code": "db_unavailable"}
    finally:
        served.stop()
        relay.close()
        sql.close()
    log = served.log_text()
    assert '"event": "stream_aborted"' in log
