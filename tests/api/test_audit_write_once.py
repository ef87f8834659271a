"""An audit batch whose INSERT committed but whose answer never came back is sent again: it must
not write any row twice (0005_audit_write_once.sql: a unique audit_uid and INSERT IGNORE).

A relay between the audit writer and MariaDB holds the database's answers longer than the
writer's read timeout, so every write in that window commits and then fails on the client side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time

from testkit import DB_HOST, DB_PORT, free_port, wait_until


class SlowAnswerRelay:
    """A TCP relay to MariaDB that can hold the server's answer to an INSERT for `delay` seconds
    (the handshake and other statements pass at once)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((DB_HOST, DB_PORT))
            self._sockets += [client, upstream]
            insert_sent = threading.Event()
            for src, dst, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(src, dst, answers, insert_sent), daemon=True
                ).start()

    def _pump(self, src, dst, answers: bool, insert_sent: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if not answers and b"INSERT" in data:
                    insert_sent.set()
                if answers and insert_sent.is_set():
                    insert_sent.clear()
                    if self.delay:
                        time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def test_a_retried_audit_write_never_writes_a_row_twice(app_factory, sql):
    app = app_factory(AUDIT_FLUSH_INTERVAL=0.3, DB_READ_TIMEOUT=1.0)
    writer = app.extensions["audit"]
    relay = SlowAnswerRelay()
    # Only the audit writer goes through the relay; requests reach the database directly.
    writer.settings = dataclasses.replace(writer.settings, DB_PORT=relay.port)
    relay.delay = 2.5  # longer than the read timeout: each write commits, its answer is lost
    client = app.test_client()
    try:
        ids = [client.get("/api/nothing").headers["X-Request-ID"] for _ in range(30)]
        # The writer tries (and commits) at least twice while the answers are held.
        wait_until(lambda: sql.value("SELECT COUNT(*) FROM audit_logs") >= 30, timeout=20)
        time.sleep(3)
        relay.delay = 0.0
        wait_until(lambda: writer.waiting == 0, timeout=20)
        writer.close(timeout=5)
    finally:
        relay.close()
    rows = sql.all("SELECT request_id, COUNT(*) AS n FROM audit_logs GROUP BY request_id")
    counts = {row["request_id"]: row["n"] for row in rows}
    assert set(counts) == set(ids)
    assert sorted(counts.values()) == [1] * 30, "a request's row was written twice"
    assert sql.value("SELECT COUNT(DISTINCT audit_uid) FROM audit_logs") == 30


def test_the_writer_sends_each_row_with_its_own_uid(app, sql):
    client = app.test_client()
    for _ in range(3):
        client.get("/api/nothing", headers={"X-Request-ID": "0" * 32})  # a client's repeated id
    app.extensions["audit"].flush()
    # Three distinct requests under one client-chosen id: three rows, none skipped.
    assert sql.value("SELECT COUNT(*) FROM audit_logs WHERE request_id = %s", ("0" * 32,)) == 3
    assert sql.value("SELECT COUNT(DISTINCT audit_uid) FROM audit_logs") == 3
