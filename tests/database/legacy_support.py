"""Legacy databases for the upgrade tests, built from the fixture SQL files with the mysql client,
and the comparisons the tests make against a fresh install."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator

import testkit
from service import migrations

FIXTURES = testkit.ROOT / "tests" / "fixtures"
SHAPES = {
    "shipped": FIXTURES / "legacy_shipped.sql",  # as shipped: no last_reset
    "hand_fixed": FIXTURES / "legacy_hand_fixed.sql",  # last_reset DATETIME added by hand
}
TABLES = ("users", "api_keys", "audit_logs", "articles", "schema_migrations")
# Columns whose value depends on when a database was loaded or migrated, not on the migration.
VOLATILE = {"schema_migrations": {"applied_at"}, "users": {"created_at"}}


def planted_keys(shape: str) -> list[str]:
    first = SHAPES[shape].read_text(encoding="utf-8").splitlines()[0]
    return first.removeprefix("-- planted-keys: ").split(",")


def fixture_sql(shape: str, *, data: bool) -> bytes:
    text = SHAPES[shape].read_text(encoding="utf-8")
    if not data:
        text = text[: text.index("\nINSERT INTO")]
    return text.encode("utf-8")


def mysql_load(database: str, sql: bytes, zone: str = "+00:00") -> None:
    env = {**os.environ}
    if testkit.DB_PASS:
        env["MYSQL_PWD"] = testkit.DB_PASS
    argv = [
        "mysql",
        f"-u{testkit.DB_USER}",
        f"-h{testkit.DB_HOST}",
        f"-P{testkit.DB_PORT}",
        "--protocol=TCP",
        f"--init-command=SET time_zone = '{zone}'",
        database,
    ]
    done = subprocess.run(argv, input=sql, capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


@contextlib.contextmanager
def legacy_database(shape: str, *, data: bool = True) -> Iterator[str]:
    with testkit.fresh_database(migrate=False) as name:
        mysql_load(name, fixture_sql(shape, data=data))
        yield name


def run_migrate(database: str, *, after_statement=None, **context) -> list:
    conn = testkit.root_connection(database)
    try:
        return migrations.migrate(
            conn,
            testkit.upgrade_context(**context),
            log=lambda _line: None,
            after_statement=after_statement,
        )
    finally:
        conn.close()


def schema_of(database: str) -> dict[str, str]:
    """Every table's and view's definition, with what differs between equal databases removed
    (the AUTO_INCREMENT counter, the database's own name, the definer)."""
    sql = testkit.Sql(database)
    try:
        out = {}
        for row in sql.all("SHOW FULL TABLES"):
            name, kind = list(row.values())
            if kind == "VIEW":
                text = sql.value(
                    "SELECT view_definition FROM information_schema.views "
                    "WHERE table_schema = DATABASE() AND table_name = %s",
                    (name,),
                )
            else:
                text = list(sql.one(f"SHOW CREATE TABLE `{name}`").values())[1]
                text = re.sub(r" AUTO_INCREMENT=\d+", "", text)
            out[name] = text.replace(f"`{database}`.", "")
        return out
    finally:
        sql.close()


def rows_of(database: str) -> dict[str, list[dict]]:
    sql = testkit.Sql(database)
    try:
        sql.run("SET time_zone = '+00:00'")
        out = {}
        for table in TABLES:
            skip = VOLATILE.get(table, set())
            order = "version" if table == "schema_migrations" else "id"
            out[table] = [
                {k: v for k, v in row.items() if k not in skip}
                for row in sql.all(f"SELECT * FROM `{table}` ORDER BY {order}")
            ]
        return out
    finally:
        sql.close()


def fresh_schema() -> dict[str, str]:
    with testkit.fresh_database() as name:
        return schema_of(name)
