"""An audit batch whose INSERT committed but whose answer never came back is sent again: it must
not write any row twice (0005_audit_write_once.sql: a unique audit_uid and INSERT IGNORE).

A relay between the audit writer and MariaDB holds the database's answers longer than the
writer's read timeout, so every write in that window commits and then fails on the client side.
"""

from __future__ import annotations

import dataclasses
import time

from testkit import TcpRelay, wait_until


class SlowAnswerRelay(TcpRelay):
    """A relay to MariaDB that holds the server's answer to an INSERT for `hold` seconds (the
    handshake and other statements pass at once)."""

    hold = 0.0

    def passing(self, data: bytes, *, answer: bool, connection: dict) -> None:
        if not answer and b"INSERT" in data:
            connection["insert_sent"] = True
        elif answer and connection.pop("insert_sent", False) and self.hold:
            time.sleep(self.hold)


def test_a_retried_audit_write_never_writes_a_row_twice(app_factory, sql):
    app = app_factory(AUDIT_FLUSH_INTERVAL=0.3, DB_READ_TIMEOUT=1.0)
    writer = app.extensions["audit"]
    relay = SlowAnswerRelay()
    # Only the audit writer goes through the relay; requests reach the database directly.
    writer.settings = dataclasses.replace(writer.settings, DB_PORT=relay.port)
    relay.hold = 2.5  # longer than the read timeout: each write commits, its answer is lost
    client = app.test_client()
    try:
        ids = [client.get("/api/nothing").headers["X-Request-ID"] for _ in range(30)]
        # The writer tries (and commits) at least twice while the answers are held.
        wait_until(lambda: sql.value("SELECT COUNT(*) FROM audit_logs") >= 30, timeout=20)
        # The write committed, and the writer saw it fail: its answer was held past the timeout.
        wait_until(lambda: writer.last_error is not None, timeout=20)
        time.sleep(3)
        relay.hold = 0.0
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
