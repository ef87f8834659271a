"""The migration lock is a lease row, so that it holds across the nodes of a cluster (GET_LOCK is
node-local there); here on one server: who gets it, who waits, and what happens to a dead run's."""

from __future__ import annotations

import threading

import pytest

from service import migration_lock, migrations
from testkit import root_connection


@pytest.fixture
def conns(database):
    opened = [root_connection(database) for _ in range(2)]
    with opened[0].cursor() as cur:
        cur.execute(migration_lock.CREATE_LOCK_TABLE)
    yield opened
    for conn in opened:
        conn.close()


def test_a_held_lock_refuses_a_second_holder_until_released(conns):
    first, second = conns
    assert migration_lock.try_acquire(first, "run-a")
    assert not migration_lock.try_acquire(second, "run-b")
    migration_lock.release(first, "run-a")
    assert migration_lock.try_acquire(second, "run-b")


def test_a_dead_runs_lease_expires_and_is_taken_over(conns):
    first, second = conns
    assert migration_lock.try_acquire(first, "died", lease=1)
    with first.cursor() as cur:  # as if its lease had run out a while ago
        cur.execute(
            "UPDATE schema_migrations_lock SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
        )
    assert migration_lock.try_acquire(second, "next")
    # The dead run's release (if it ever came) cannot free the new holder's lock.
    migration_lock.release(first, "died")
    assert not migration_lock.try_acquire(first, "third")


def test_renewal_keeps_a_live_runs_lease(conns):
    first, second = conns
    assert migration_lock.try_acquire(first, "live", lease=1)
    migration_lock.renew(first, "live", lease=600)
    with first.cursor() as cur:
        cur.execute(
            "SELECT expires_at > UTC_TIMESTAMP(6) + INTERVAL 500 SECOND AS renewed "
            "FROM schema_migrations_lock"
        )
        assert cur.fetchone()["renewed"] == 1
    assert not migration_lock.try_acquire(second, "other")


def test_waiting_for_a_lock_never_released_ends_with_a_clear_error(conns):
    first, second = conns
    assert migration_lock.try_acquire(first, "slow")
    refused = pytest.raises(migration_lock.LockNotGranted, match="another migration is running")
    with refused, migration_lock.held(second, wait=0.5):
        pass


def test_two_migrations_started_together_apply_each_migration_once(database):
    errors, applied = [], []

    def run():
        conn = root_connection(database)
        try:
            applied.append(len(migrations.migrate(conn, log=lambda _line: None)))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            conn.close()

    # `database` is already migrated: empty it of records so both runs have work to race for.
    conn = root_connection(database)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE `%s`" % database)  # noqa: UP031 - a test-made identifier
        cur.execute("CREATE DATABASE `%s`" % database)  # noqa: UP031
    conn.close()
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(applied) == [0, len(migrations.available())]
    conn = root_connection(database)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM schema_migrations")
        assert cur.fetchone()["n"] == len(migrations.available())
        cur.execute("SELECT COUNT(*) AS n FROM schema_migrations_lock")
        assert cur.fetchone()["n"] == 0, "the lock is released"
    conn.close()
