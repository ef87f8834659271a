"""Database.retrying against a real database: a unit of work that meets a deadlock, certification
conflict or lock wait timeout runs again after a short, growing, jittered pause; work that meets
none runs once, without a pause. (tests/cluster shows why the pause is there: on a Galera cluster
a retry at once can read a row the node has not yet updated and lose again.)"""

from __future__ import annotations

import pymysql
import pytest

from service import db as db_module
from service.db import (
    RETRY_ATTEMPTS,
    RETRY_PAUSE_FIRST,
    RETRY_PAUSE_MAX,
    DatabaseBusy,
    conflict_pause,
)


@pytest.fixture
def pauses(monkeypatch) -> list[int]:
    """The attempts after which `retrying` paused (the pause itself is not waited out)."""
    taken: list[int] = []

    def record(attempt: int) -> float:
        taken.append(attempt)
        return 0.0

    monkeypatch.setattr(db_module, "conflict_pause", record)
    return taken


def conflicts_then_select(codes: list[int]):
    pending = iter(codes)

    def work(cur):
        code = next(pending, None)
        if code is not None:
            raise pymysql.err.OperationalError(code, "Deadlock found when trying to get lock")
        cur.execute("SELECT 41 + 1 AS answer")
        return cur.fetchone()["answer"]

    return work


@pytest.mark.parametrize("atomic", [True, False])
def test_work_without_a_conflict_runs_once_and_never_pauses(app, pauses, atomic):
    assert app.extensions["db"].retrying(conflicts_then_select([]), atomic=atomic) == 42
    assert pauses == []


@pytest.mark.parametrize("atomic", [True, False])
def test_each_conflict_is_followed_by_a_pause_then_the_work_again(app, pauses, atomic):
    work = conflicts_then_select([1213, 1205, 1213])
    assert app.extensions["db"].retrying(work, atomic=atomic) == 42
    assert pauses == [1, 2, 3]


def test_conflicts_past_the_last_attempt_are_busy_with_no_pause_after_the_last(app, pauses):
    work = conflicts_then_select([1213] * RETRY_ATTEMPTS)
    with pytest.raises(DatabaseBusy):
        app.extensions["db"].retrying(work)
    assert pauses == list(range(1, RETRY_ATTEMPTS))
    # The connection is still good for the next request.
    assert app.extensions["db"].retrying(conflicts_then_select([])) == 42


def test_the_pause_doubles_up_to_its_ceiling_and_half_of_it_is_random():
    for attempt in range(1, RETRY_ATTEMPTS):
        ceiling = min(RETRY_PAUSE_MAX, RETRY_PAUSE_FIRST * 2 ** (attempt - 1))
        drawn = [conflict_pause(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= p <= ceiling for p in drawn), attempt
        assert len(set(drawn)) > 100, "the pauses are jittered"
    worst = sum(min(RETRY_PAUSE_MAX, RETRY_PAUSE_FIRST * 2**a) for a in range(RETRY_ATTEMPTS - 1))
    print(f"longest total pause before 503 service_busy: {worst * 1000:.0f} ms")
    assert worst < 0.75
