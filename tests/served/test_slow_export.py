"""A client that reads an NDJSON export slowly, against the real service: the export streams each
query while it sends (service/repositories/articles.py, `ndjson_batches`), so a stalled client
also stalls the database's writes. The export still arrives whole, in order, once, and the worker
serves the next request on the same connection."""

from __future__ import annotations

import re
import socket
import time

import pytest

from testkit import Sql, dechunk, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADDED = 45_000  # more than two queries' worth (STREAM_SEGMENT)


def read_until_closed(sock: socket.socket, pauses: list[float]) -> bytes:
    """Everything the server sends, read 64 KiB at a time, stopping for `pauses` seconds after
    each of the first reads (the kernel's buffers fill and the worker blocks on its sends)."""
    received = bytearray()
    for pause in pauses:
        received += sock.recv(65536)
        time.sleep(pause)
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def test_a_stalled_reader_gets_the_whole_export_and_the_worker_goes_on(sample_database, serve):
    sql = Sql(sample_database)
    sql.run(
        "INSERT INTO articles (title, url, language, summary, updated_at) "
        "SELECT CONCAT('Slow ', seq), CONCAT('https://en.wikipedia.org/wiki/Slow_', seq), 'en', "
        "REPEAT('s', 400), '2026-01-01 00:00:00' FROM seq_1_to_" + str(ADDED)
    )
    expected_ids = [row["id"] for row in sql.all("SELECT id FROM articles ORDER BY id DESC")]
    served = serve(sample_database, workers=1)
    try:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=60)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(
            b"GET /api/export?format=ndjson HTTP/1.1\r\nHost: x\r\nX-API-Key: key_DEF456\r\n\r\n"
        )
        raw = read_until_closed(sock, pauses=[2.0, 2.0, 1.0])
        sock.close()
        head, body = raw.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200")
        request_id = re.search(rb"X-Request-ID: (\w+)", head).group(1).decode()
        ids = [int(m) for m in re.findall(rb'^\{"id": (\d+),', dechunk(body), re.MULTILINE)]
        assert ids == expected_ids  # every row, once, newest first

        # The same worker (and its database connection) answers the next request.
        again = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        again.sendall(
            b"GET /api/export?limit=1 HTTP/1.1\r\nHost: x\r\nX-API-Key: key_DEF456\r\n\r\n"
        )
        answer = read_until_closed(again, pauses=[])
        again.close()
        assert answer.startswith(b"HTTP/1.1 200")
        assert f'"id":{expected_ids[0]},'.encode() in answer

        row = wait_until(
            lambda: sql.one(
                "SELECT response_code, error_code FROM audit_logs WHERE request_id = %s",
                (request_id,),
            ),
            timeout=30,
        )
        assert row == {"response_code": 200, "error_code": None}
    finally:
        served.stop()
        sql.close()
