"""Versioned SQL migrations: `sql/migrations/NNNN_name.sql`, applied in order and recorded.

Statements in a migration file end with `;` at the end of a line; lines starting with `--` are
comments. MySQL commits DDL implicitly, so a migration is not atomic: each one is written to run
once on the state the previous one left, and `schema_migrations` records it only when all of its
statements succeeded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pymysql.cursors

from service import migration_lock
from service.config import PROJECT_ROOT

SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
SAMPLE_DATA_FILES = (SQL_DIR / "sample_data.sql", SQL_DIR / "sample_articles.sql")
SAMPLE_DATABASE_FILE = SQL_DIR / "sample_database.sql"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Two instances starting together must not both migrate, even through two nodes of a cluster:
# see service/migration_lock.py (a replicated lease row, not GET_LOCK, which is node-local).

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at DATETIME NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
""".strip()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.text)


def split_statements(text: str) -> list[str]:
    statements, current = [], []
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if any(line.strip() and not line.lstrip().startswith("--") for line in current):
        raise ValueError("the last statement does not end with ';'")
    return statements


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"unexpected file in {MIGRATIONS_DIR}: {path.name}")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version number")
    return found


def latest_version() -> int:
    return max((m.version for m in available()), default=0)


def applied_versions(cur) -> set[int]:
    cur.execute(
        "SELECT COUNT(*) AS n FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
    )
    if cur.fetchone()["n"] == 0:
        return set()
    cur.execute("SELECT version FROM schema_migrations")
    return {row["version"] for row in cur.fetchall()}


def current_version(cur) -> int:
    """Highest applied version; used by /ready (needs SELECT on schema_migrations only)."""
    cur.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
    return cur.fetchone()["v"]


def migrate(conn: pymysql.Connection, *, log=print) -> list[Migration]:
    """Apply every pending migration in order; returns those applied (none on a re-run)."""
    applied = []
    with migration_lock.held(conn) as holder, conn.cursor(pymysql.cursors.DictCursor) as cur:
        # TIMESTAMP values convert to DATETIME in the session zone: make that UTC.
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(CREATE_MIGRATIONS_TABLE)
        done = applied_versions(cur)
        for migration in available():
            if migration.version in done:
                continue
            for statement in migration.statements():
                cur.execute(statement)
                migration_lock.renew(conn, holder)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, UTC_TIMESTAMP())",
                (migration.version, migration.name, migration.checksum),
            )
            conn.commit()
            applied.append(migration)
            log(f"applied {migration.path.name}")
    return applied


def load_sample_data(conn: pymysql.Connection) -> None:
    """Idempotent: sample rows are keyed by fixed ids or unique columns (INSERT IGNORE)."""
    with conn.cursor() as cur:
        for path in SAMPLE_DATA_FILES:
            for statement in split_statements(path.read_text(encoding="utf-8")):
                cur.execute(statement)
    conn.commit()


# Statements that a second run leaves as they are: a migration made only of these is loaded as
# it is; any other is wrapped in a procedure that runs it only if it is not recorded yet.
_IDEMPOTENT_FORM = re.compile(r"^\s*CREATE\s+(?:TABLE\s+IF\s+NOT\s+EXISTS|OR\s+REPLACE)\b", re.I)
SAMPLE_DATABASE = "wikimedia_prod"


def build_sample_database_sql() -> str:
    """The text of `sql/sample_database.sql`: every migration, their records, the sample data.

    Generated (`flask --app service build-sample-sql`) so it can never drift from the migrations;
    a test loads it with the mysql client and compares its tables and columns with a migrated
    database. Loading it twice works: a migration already recorded in `schema_migrations` is
    skipped (the guard is a stored procedure, the one conditional a plain `mysql < file` load
    has on both MySQL 8.0 and MariaDB), records and sample rows are INSERT IGNORE.
    """
    parts = [
        "-- Wikimedia enterprise export API: schema and sample data in one file.",
        "-- GENERATED by `flask --app service build-sample-sql` from sql/migrations/ and the",
        "-- sample data files; do not edit by hand. For a machine without the service's Python",
        "-- (and docker compose's first start); with it, prefer `flask --app service migrate`",
        "-- then `flask --app service load-sample-data`, which give the same tables. Load it with:",
        "--   mysql -u root -p < sql/sample_database.sql",
        "-- Loading it again is harmless: migrations already recorded are skipped, sample rows",
        "-- already there are kept. It never deletes anything.",
        "",
        "SET NAMES utf8mb4;",
        "SET time_zone = '+00:00';",
        f"CREATE DATABASE IF NOT EXISTS `{SAMPLE_DATABASE}` CHARACTER SET utf8mb4;",
        f"USE `{SAMPLE_DATABASE}`;",
        "",
        CREATE_MIGRATIONS_TABLE + ";",
        migration_lock.CREATE_LOCK_TABLE + ";",
        "",
    ]
    for migration in available():
        record = (
            "INSERT IGNORE INTO schema_migrations (version, name, checksum, applied_at) VALUES "
            f"({migration.version}, '{migration.name}', '{migration.checksum}', "
            "UTC_TIMESTAMP());"
        )
        parts.append(f"-- ---- migration {migration.path.name} ----")
        if all(_IDEMPOTENT_FORM.match(s) for s in migration.statements()):
            parts += [migration.text.strip(), "", record, ""]
            continue
        procedure = f"wme_sample_migration_{migration.version:04d}"
        parts += [
            f"DROP PROCEDURE IF EXISTS {procedure};",
            "DELIMITER //",
            f"CREATE PROCEDURE {procedure}()",
            "BEGIN",
            f"  IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = "
            f"{migration.version}) THEN",
            migration.text.strip(),
            record,
            "  END IF;",
            "END//",
            "DELIMITER ;",
            f"CALL {procedure}();",
            f"DROP PROCEDURE {procedure};",
            "",
        ]
    for path in SAMPLE_DATA_FILES:
        text = path.read_text(encoding="utf-8").strip()
        parts += [f"-- ---- sample data {path.name} ----", text, ""]
    return "\n".join(parts)
