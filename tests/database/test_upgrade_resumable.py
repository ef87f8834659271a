"""The legacy upgrade finishes from any state, on both legacy shapes, and equals a fresh install.

Shapes (tests/fixtures): `shipped` (no last_reset) and `hand_fixed` (last_reset DATETIME added by
hand), each with and without data. A run is interrupted after every executed statement in turn
(the runner's `after_statement` hook raises), then `migrate` runs again; the result must have the
schema of a fresh install (tables, columns, indexes, view) and the rows of an uninterrupted upgrade.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from legacy_support import (
    SHAPES,
    fresh_schema,
    legacy_database,
    rows_of,
    run_migrate,
    schema_of,
)

import testkit
from service import migrations

ALL_VERSIONS = [m.version for m in migrations.available()]
STEPS = sum(len(m.steps()) for m in migrations.available())
CHUNK = 8


class Interrupted(Exception):
    pass


def stop_after(n: int):
    def hook(count, _step):
        if count == n:
            raise Interrupted(n)

    return hook


def recorded(database: str) -> list[int]:
    sql = testkit.Sql(database)
    try:
        return [r["version"] for r in sql.all("SELECT version FROM schema_migrations")]
    finally:
        sql.close()


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return fresh_schema()


_REFERENCE: dict[tuple[str, bool], tuple[int, dict]] = {}


def reference(shape: str, data: bool) -> tuple[int, dict]:
    """(statements an uninterrupted upgrade executes, the rows it leaves), once per worker."""
    if (shape, data) not in _REFERENCE:
        with legacy_database(shape, data=data) as name:
            counted = []
            run_migrate(name, after_statement=lambda n, _s: counted.append(n))
            _REFERENCE[shape, data] = (len(counted), rows_of(name))
    return _REFERENCE[shape, data]


@pytest.mark.parametrize("data", [True, False], ids=["data", "empty"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_uninterrupted_upgrade_equals_a_fresh_install(shape, data, fresh):
    with legacy_database(shape, data=data) as name:
        applied = run_migrate(name)
        assert [m.version for m in applied] == ALL_VERSIONS
        assert schema_of(name) == fresh
        assert run_migrate(name) == [], "a second run has nothing to do"


@pytest.mark.slow
@pytest.mark.parametrize("first", range(1, STEPS + 1, CHUNK), ids=lambda n: f"from{n}")
@pytest.mark.parametrize("shape", list(SHAPES))
def test_interrupted_after_any_statement_the_next_run_finishes(shape, first, fresh, capsys):
    total, expected_rows = reference(shape, True)
    interrupted = 0
    for n in range(first, min(first + CHUNK, total + 1)):
        with legacy_database(shape) as name:
            with pytest.raises(Interrupted):
                run_migrate(name, after_statement=stop_after(n))
            assert recorded(name) != ALL_VERSIONS, f"run 1 stopped after statement {n}"
            resumed = run_migrate(name)
            assert resumed, f"statement {n}: the second run applied the rest"
            assert recorded(name) == ALL_VERSIONS
            assert schema_of(name) == fresh, f"schema after an interruption at statement {n}"
            assert rows_of(name) == expected_rows, f"rows after an interruption at statement {n}"
            interrupted += 1
    with capsys.disabled():
        print(
            f"\n[{shape}] interrupted after statements {first}..{first + interrupted - 1} "
            f"of {total}: {interrupted} x 2 runs, each resumed to a fresh install's schema"
        )
    assert interrupted or first > total


@pytest.mark.parametrize("data", [True, False], ids=["data", "empty"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_one_new_statement_per_run_still_ends_equal_to_a_fresh_install(shape, data, fresh, capsys):
    """Every run dies right after the first statement no earlier run executed: each run resumes
    from the state the previous one died in (repeating only what is harmless to repeat)."""
    total, expected_rows = reference(shape, data)
    seen: set[tuple[int, int]] = set()

    def die_at_a_new_statement(_n, where):
        if where not in seen:
            seen.add(where)
            raise Interrupted(where)

    runs = 0
    with legacy_database(shape, data=data) as name:
        while True:
            runs += 1
            assert runs <= STEPS + 1, "the upgrade does not advance"
            try:
                run_migrate(name, after_statement=die_at_a_new_statement)
            except Interrupted:
                continue
            break
        assert recorded(name) == ALL_VERSIONS
        assert schema_of(name) == fresh
        assert rows_of(name) == expected_rows
    assert runs == len(seen) + 1 and len(seen) == total
    with capsys.disabled():
        print(
            f"\n[{shape}, {'data' if data else 'empty'}] {runs} runs, each killed after one "
            "new statement, then a final one"
        )


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [sys.argv[3], sys.argv[3] + "/tests"]
    import testkit
    from service import migrations
    conn = testkit.root_connection(sys.argv[1])
    def die(n, _where):
        if n == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
    migrations.migrate(conn, testkit.upgrade_context(), log=lambda _l: None, after_statement=die)
    """
)


@pytest.mark.parametrize("n", [1, 9, 22, 23, 35, 45])
def test_a_process_killed_mid_upgrade_leaves_a_state_the_next_run_finishes(n, fresh):
    """A real SIGKILL: the connection drops without a goodbye and the server frees the lock."""
    _, expected_rows = reference("hand_fixed", True)
    with legacy_database("hand_fixed") as name:
        done = subprocess.run(
            [sys.executable, "-c", KILLER, name, str(n), str(testkit.ROOT)],
            cwd=testkit.ROOT,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == -9, done.stderr.decode(errors="replace")
        assert recorded(name) != ALL_VERSIONS
        assert run_migrate(name)
        assert schema_of(name) == fresh
        assert rows_of(name) == expected_rows
