"""TICKET-001/002 in place: the migrations upgrade a database in the legacy shape.

tests/fixtures/legacy_hand_fixed.sql holds the legacy tables (with the hand-added last_reset),
with plain-text keys planted in key columns and in error texts. It is loaded with the mysql
client on a session whose time zone is +05:00 (a legacy server not on UTC), and migrated on a
connection whose session zone is +05:00 too: the runner must still convert TIMESTAMPs as UTC.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from service import migrations
from testkit import (
    DB_HOST,
    DB_PASS,
    DB_PORT,
    DB_USER,
    ROOT,
    Sql,
    close_app,
    fresh_database,
    key_hash,
    make_app,
    root_connection,
    upgrade_context,
)

LEGACY_SQL = ROOT / "tests" / "fixtures" / "legacy_hand_fixed.sql"
_FIRST_LINE = LEGACY_SQL.read_text(encoding="utf-8").splitlines()[0]
assert _FIRST_LINE.startswith("-- planted-keys: ")
PLANTED = _FIRST_LINE.removeprefix("-- planted-keys: ").split(",")
LEGACY_ZONE = "+05:00"
# Every legacy key could read /api/audit: every key keeps the audit scope (its own user's rows).
SCOPES = {
    "read": {"export", "audit"},
    "write": {"export", "import", "audit"},
    "admin": {"export", "import", "audit", "admin"},
}
TABLES = ("users", "api_keys", "audit_logs")


def pieces(secret: str, size: int = 7) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def scopes(value) -> set[str]:
    return set(value) if isinstance(value, set | frozenset) else set(filter(None, value.split(",")))


@contextlib.contextmanager
def legacy_database() -> Iterator[str]:
    """An empty database holding the legacy fixture, loaded as the operator would."""
    with fresh_database(migrate=False) as name:
        env = {**os.environ}
        if DB_PASS:
            env["MYSQL_PWD"] = DB_PASS
        argv = [
            "mysql",
            f"-u{DB_USER}",
            f"-h{DB_HOST}",
            f"-P{DB_PORT}",
            "--protocol=TCP",
            f"--init-command=SET time_zone = '{LEGACY_ZONE}'",
            name,
        ]
        with LEGACY_SQL.open("rb") as stdin:
            done = subprocess.run(argv, stdin=stdin, capture_output=True, env=env, timeout=30)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        yield name


def migrate(database: str) -> list:
    conn = root_connection(database, init_command=f"SET time_zone = '{LEGACY_ZONE}'")
    try:
        return migrations.migrate(conn, upgrade_context(), log=lambda _line: None)
    finally:
        conn.close()


def snapshot_then_migrate(sql) -> dict:
    """The legacy rows as read in UTC, then the migration; returns what was read before."""
    sql.run("SET time_zone = '+00:00'")
    before = {table: sql.all(f"SELECT * FROM `{table}` ORDER BY id") for table in TABLES}
    before["dump"] = sql.dump()
    applied = migrate(sql.database)
    assert [m.version for m in applied] == [m.version for m in migrations.available()]
    return before


@dataclass
class Migrated:
    sql: object
    before: dict


@pytest.fixture(scope="module")
def migrated() -> Iterator[Migrated]:
    """One migrated legacy database for the tests that only read (migrating takes ~1 s)."""
    with legacy_database() as name:
        sql = Sql(name)
        try:
            yield Migrated(sql, snapshot_then_migrate(sql))
        finally:
            sql.close()


@pytest.fixture
def legacy(migrated) -> dict:
    return migrated.before


@pytest.fixture
def migrated_sql(migrated):
    """The shared migrated legacy database, for the tests that only read."""
    return migrated.sql


@pytest.fixture
def legacy_client() -> Iterator[tuple]:
    """A migrated legacy database of the test's own, and a client of the app on it."""
    with legacy_database() as name:
        sql = Sql(name)
        before = snapshot_then_migrate(sql)
        app = make_app(name)
        try:
            yield app.test_client(), before, sql
        finally:
            close_app(app)
            sql.close()


def test_the_fixture_really_holds_the_legacy_defects(legacy):
    # Controls for the tests below: the secrets and the stuck counter are there before migrating.
    for key in PLANTED:
        assert key in legacy["dump"]
    stuck = next(k for k in legacy["api_keys"] if k["api_key"] == "key_JKL012")
    assert stuck["calls_made"] == stuck["rate_limit"] == 5
    assert [len(legacy[t]) for t in TABLES] == [4, 5, 12]


def test_keys_are_hashed_and_no_plain_key_column_remains(legacy, migrated_sql):
    after = {k["id"]: k for k in migrated_sql.all("SELECT id, key_hash, key_prefix FROM api_keys")}
    assert set(after) == {k["id"] for k in legacy["api_keys"]}
    for old in legacy["api_keys"]:
        plain = old["api_key"]
        assert after[old["id"]]["key_hash"] == key_hash(plain)
        assert after[old["id"]]["key_hash"] != hashlib.sha256(plain.encode()).hexdigest()
        assert after[old["id"]]["key_prefix"] == plain[:6]
    assert (
        migrated_sql.all(
            "SELECT table_name FROM information_schema.COLUMNS "
            "WHERE table_schema = DATABASE() AND column_name = 'api_key'"
        )
        == []
    )


def test_no_planted_key_nor_any_seven_character_piece_survives(legacy, migrated_sql):
    dump = migrated_sql.dump().lower()
    assert "masked_audit_logs" in dump and "schema_migrations" in dump, "the dump covers all"
    found = sorted({p for key in PLANTED for p in pieces(key) if p.lower() in dump})
    assert not found, f"pieces of planted keys still in the database: {found}"


def test_error_texts_are_scrubbed(legacy, migrated_sql):
    rows = migrated_sql.all("SELECT id, error_message FROM audit_logs")
    texts = {r["id"]: r["error_message"] for r in rows}
    assert texts[4] == "Rate limit exceeded: key_AB... (5/5)"
    assert texts[5] == "permission denied for key_DE... on /api/export"
    assert texts[7] == "Rate limit exceeded: key_JK... (5/5)"
    assert texts[9] == "key_GH... tried to reuse session of key_AB...", "both keys masked"
    assert texts[10] == "key key_MN... is revoked (is_valid=0)"
    assert texts[11] == "API key not recognised", "a text without a key is kept"
    # key_ZZZ999 belongs to no table, so it cannot be masked by lookup: the text goes.
    assert "redacted" in texts[12] and "ZZZ" not in texts[12]
    assert [i for i, t in texts.items() if t is None] == [1, 2, 3, 6, 8]


def test_permission_levels_become_scopes(legacy, migrated_sql):
    level = {u["id"]: u["permission_level"] for u in legacy["users"]}
    rows = migrated_sql.all("SELECT id, user_id, scopes FROM api_keys ORDER BY id")
    assert {r["id"]: scopes(r["scopes"]) for r in rows} == {
        r["id"]: SCOPES[level[r["user_id"]]] for r in rows
    }
    assert scopes(rows[2]["scopes"]) == {"export", "import", "audit", "admin"}  # key_GHI789


def test_last_reset_is_a_date_and_every_counter_starts_afresh(legacy, migrated_sql):
    column = migrated_sql.one(
        "SELECT data_type, is_nullable, column_default FROM information_schema.COLUMNS "
        "WHERE table_schema = DATABASE() AND table_name = 'api_keys' "
        "AND column_name = 'last_reset'"
    )
    assert column["data_type"].lower() == "date" and column["is_nullable"] == "YES"
    assert column["column_default"] in (None, "NULL")
    assert migrated_sql.all("SELECT DISTINCT last_reset, calls_made FROM api_keys") == [
        {"last_reset": None, "calls_made": 0}
    ]


def test_no_row_is_lost_and_audit_rows_keep_their_facts(legacy, migrated_sql):
    for table in TABLES:
        assert migrated_sql.value(f"SELECT COUNT(*) FROM `{table}`") == len(legacy[table]), table
    key_ids = {k["api_key"]: k["id"] for k in legacy["api_keys"]}
    after = {
        r["id"]: r
        for r in migrated_sql.all(
            "SELECT id, key_id, key_prefix, endpoint, response_code, response_time_ms, "
            "`timestamp` FROM audit_logs"
        )
    }
    for old in legacy["audit_logs"]:
        new = after[old["id"]]
        facts = ("endpoint", "response_code", "response_time_ms", "timestamp")
        assert {f: new[f] for f in facts} == {f: old[f] for f in facts}, old["id"]
        assert new["key_id"] == key_ids.get(old["api_key"]), old["id"]
        assert new["key_prefix"] == old["api_key"][:6]
    # The deleted key keeps its prefix but points at no key.
    assert after[11]["key_id"] is None and after[11]["key_prefix"] == "key_QR"
    # Fixture literals were written at +05:00: 09:15:02 there is 04:15:02 UTC.
    assert after[1]["timestamp"].isoformat() == "2023-10-05T04:15:02"


def test_masked_view_shows_six_characters_and_dots(legacy, migrated_sql):
    rows = migrated_sql.all("SELECT id, masked_key FROM masked_audit_logs")
    masked = {r["id"]: r["masked_key"] for r in rows}
    assert masked == {r["id"]: r["api_key"][:6] + "..." for r in legacy["audit_logs"]}


def test_rerunning_migrate_changes_nothing(legacy, migrated_sql):
    def state() -> tuple[str, list[str]]:
        ddl = [
            list(migrated_sql.one(f"SHOW CREATE TABLE `{t}`").values())[1]
            for t in (*TABLES, "articles", "schema_migrations", "masked_audit_logs")
        ]
        return migrated_sql.dump(), ddl

    first = state()
    assert migrate(migrated_sql.database) == []
    assert state() == first


def test_clients_after_migration(legacy_client):
    client, _, sql = legacy_client
    # The stuck client of TICKET-001 is served again, with a fresh day's quota.
    stuck = client.get("/api/export", headers={"X-API-Key": "key_JKL012"})
    assert stuck.status_code == 200, stuck.get_data(as_text=True)
    assert stuck.headers["X-RateLimit-Remaining"] == "4"
    # Past their expiry date, but the legacy service honoured them: a grace period keeps them
    # working on release day (expiry is enforced after it: tests/database/test_upgrade_plan.py).
    for key in ("key_ABC123", "key_DEF456"):
        graced = client.get("/api/export", headers={"X-API-Key": key})
        assert graced.status_code == 200, graced.get_data(as_text=True)
    disabled = client.get("/api/export", headers={"X-API-Key": "key_MNO345"})
    assert (disabled.status_code, disabled.get_json()["error"]["code"]) == (403, "key_disabled")
    # The deleted key and the never-stored one were never keys of this database.
    for key in ("key_QRS678", "key_ZZZ999"):
        assert client.get("/api/export", headers={"X-API-Key": key}).status_code == 401
    assert sql.value("SELECT calls_made FROM api_keys WHERE key_prefix = 'key_JK'") == 1


def test_admin_lists_the_migrated_rows_with_masked_keys_only(legacy_client):
    client, legacy, _ = legacy_client
    response = client.get("/api/audit?limit=100", headers={"X-API-Key": "key_GHI789"})
    assert response.status_code == 200, response.get_data(as_text=True)
    rows = response.get_json()["data"]
    assert [r["id"] for r in rows] == list(range(12, 0, -1)), "every migrated row, newest first"
    expected = {r["id"]: r["api_key"][:6] + "..." for r in legacy["audit_logs"]}
    assert {r["id"]: r["masked_key"] for r in rows} == expected
    assert rows[-1]["timestamp"] == "2023-10-05T04:15:02.000Z"
    text = json.dumps(rows).lower()
    assert not [p for key in PLANTED for p in pieces(key) if p.lower() in text]
    assert "error_message" not in rows[0]
