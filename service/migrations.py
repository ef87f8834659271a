"""Versioned SQL migrations: `sql/migrations/NNNN_name.sql`, applied in order and recorded.

Statements in a migration file end with `;` at the end of a line; lines starting with `--` are
comments, except two kinds of directives placed right before a step:

* `-- when: column TABLE.COLUMN exists | is missing | is nullable | is not TYPE` and
  `-- when: index TABLE.INDEX exists | is missing`: the statement runs only if every condition
  holds now (read from information_schema just before it).
* `-- run: NAME`: a step written in Python (`PYTHON_STEPS`), for work SQL cannot do, such as the
  keyed hash of legacy keys.

MySQL commits DDL implicitly, so a migration is never atomic. It is made resumable instead: each
statement is either guarded so that it runs only while its change is still missing, or harmless to
repeat. A run that dies after any statement leaves a state from which the next `migrate` finishes
the work; `schema_migrations` records a migration once all of its steps went through.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pymysql.cursors

from service import legacy_upgrade, migration_lock
from service.config import PROJECT_ROOT
from service.keys import SAMPLE_KEY_HASH_SECRET, render_key_hashes
from service.repositories import information_schema as schema

SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
SAMPLE_DATA_FILES = (SQL_DIR / "sample_data.sql", SQL_DIR / "sample_articles.sql")
SAMPLE_DATABASE_FILE = SQL_DIR / "sample_database.sql"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_GUARD = re.compile(
    r"^(column|index) ([a-z_]+)\.([a-z_]+) (exists|is missing|is nullable|is not [a-z]+)$"
)
# Two instances starting together must not both migrate, even through two nodes of a cluster:
# see service/migration_lock.py (a replicated lease row, not GET_LOCK, which is node-local).
PYTHON_STEPS: dict[str, Callable] = {"legacy_keys": legacy_upgrade.apply_legacy_keys}

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at DATETIME NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
""".strip()


class MigrationError(RuntimeError):
    """A migration cannot run (a malformed file, another run holding the lock, a missing secret)."""


@dataclass(frozen=True)
class Guard:
    kind: str  # column | index
    table: str
    name: str
    condition: str

    def holds(self, cur) -> bool:
        if self.kind == "index":
            found = schema.has_index(cur, self.table, self.name)
            return found if self.condition == "exists" else not found
        column = schema.column(cur, self.table, self.name)
        if self.condition == "exists":
            return column is not None
        if self.condition == "is missing":
            return column is None
        if self.condition == "is nullable":
            return column is not None and bool(column["nullable"])
        wanted = self.condition.removeprefix("is not ")
        return column is None or column["data_type"] != wanted

    def __str__(self) -> str:
        return f"{self.kind} {self.table}.{self.name} {self.condition}"


@dataclass(frozen=True)
class Step:
    sql: str | None = None
    run: str | None = None
    guards: tuple[Guard, ...] = field(default_factory=tuple)

    def due(self, cur) -> bool:
        return all(guard.holds(cur) for guard in self.guards)

    def describe(self) -> str:
        return f"run {self.run}" if self.run else " ".join(self.sql.split())[:90]


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

    def steps(self) -> list[Step]:
        return parse_steps(self.text)

    def statements(self) -> list[str]:
        return [step.sql for step in self.steps() if step.sql is not None]


def parse_steps(text: str) -> list[Step]:
    steps: list[Step] = []
    guards: list[Guard] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not current and stripped.startswith("--"):
            directive = stripped[2:].strip()
            if directive.startswith("when:"):
                match = _GUARD.match(directive.removeprefix("when:").strip())
                if not match:
                    raise MigrationError(f"malformed guard: {stripped}")
                guards.append(Guard(*match.groups()))
            elif directive.startswith("run:"):
                name = directive.removeprefix("run:").strip()
                if name not in PYTHON_STEPS:
                    raise MigrationError(f"unknown Python step: {name}")
                steps.append(Step(run=name, guards=tuple(guards)))
                guards = []
            continue
        if not current and not stripped:
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            steps.append(Step(sql="\n".join(current).rstrip().rstrip(";"), guards=tuple(guards)))
            current, guards = [], []
    if any(line.strip() for line in current) or guards:
        raise MigrationError("the last statement does not end with ';' (or a guard guards nothing)")
    return steps


def split_statements(text: str) -> list[str]:
    """The statements of a plain SQL file (sample data), comments left out."""
    return [step.sql for step in parse_steps(text) if step.sql is not None]


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
    if not schema.has_table(cur, "schema_migrations"):
        return set()
    cur.execute("SELECT version FROM schema_migrations")
    return {row["version"] for row in cur.fetchall()}


def current_version(cur) -> int:
    """Highest applied version; used by /ready (needs SELECT on schema_migrations only)."""
    cur.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
    return cur.fetchone()["v"]


def pending(cur) -> list[Migration]:
    done = applied_versions(cur)
    return [m for m in available() if m.version not in done]


def plan(conn: pymysql.Connection, context: legacy_upgrade.Context) -> legacy_upgrade.Plan:
    """What `migrate` would do now, read without changing anything."""
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SET time_zone = '+00:00'")
        todo = pending(cur)
        return legacy_upgrade.build_plan(cur, context, [m.path.name for m in todo])


def migrate(
    conn: pymysql.Connection,
    context: legacy_upgrade.Context | None = None,
    *,
    log: Callable[[str], None] = print,
    on_plan: Callable[[legacy_upgrade.Plan], None] | None = None,
    after_statement: Callable[[int, tuple[int, int]], None] | None = None,
) -> list[Migration]:
    """Apply every pending migration in order; returns those applied (none on a re-run).

    `on_plan` receives what the run is about to do (the plan `--plan` prints) before anything
    changes; `log` receives one line per applied migration.
    `after_statement(n, (version, index))` is called after each executed step (n counts this
    run's executed steps from 1; index is the step's place in its migration, from 1): the tests
    use it to interrupt a run after every statement in turn.
    """
    context = context or legacy_upgrade.Context()
    applied: list[Migration] = []
    executed = 0
    with migration_lock.held(conn) as holder, conn.cursor(pymysql.cursors.DictCursor) as cur:
        # TIMESTAMP values convert to DATETIME in the session zone: make that UTC.
        cur.execute("SET time_zone = '+00:00'")
        todo = pending(cur)
        if todo and on_plan is not None:
            on_plan(legacy_upgrade.build_plan(cur, context, [m.path.name for m in todo]))
        cur.execute(CREATE_MIGRATIONS_TABLE)
        for migration in todo:
            for index, step in enumerate(migration.steps(), start=1):
                if not step.due(cur):
                    continue
                if step.run:
                    PYTHON_STEPS[step.run](cur, context)
                else:
                    cur.execute(step.sql)
                conn.commit()
                migration_lock.renew(conn, holder)
                executed += 1
                if after_statement is not None:
                    after_statement(executed, (migration.version, index))
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, UTC_TIMESTAMP())",
                (migration.version, migration.name, migration.checksum),
            )
            conn.commit()
            applied.append(migration)
            log(f"applied {migration.path.name}")
    return applied


def load_sample_data(
    conn: pymysql.Connection, secret: str, extra_files: tuple[Path, ...] = ()
) -> None:
    """Idempotent: sample rows are keyed by fixed ids or unique columns (INSERT IGNORE).

    Key hashes in the files are `{{key_hash:...}}` placeholders, filled in with `secret`.
    """
    with conn.cursor() as cur:
        for path in (*SAMPLE_DATA_FILES, *extra_files):
            text = render_key_hashes(path.read_text(encoding="utf-8"), secret)
            for statement in split_statements(text):
                cur.execute(statement)
    conn.commit()


def fresh_install_steps(conn: pymysql.Connection) -> set[tuple[int, int]]:
    """The (version, index) of every step a fresh install executes, found by migrating `conn`'s
    database, which must be empty (a scratch database)."""
    executed: set[tuple[int, int]] = set()
    migrate(conn, log=lambda _line: None, after_statement=lambda _n, where: executed.add(where))
    return executed


# Statements that a second run leaves as they are: a migration made only of these is loaded as
# it is; any other is wrapped in a procedure that runs it only if it is not recorded yet.
_IDEMPOTENT_FORM = re.compile(r"^\s*CREATE\s+(?:TABLE\s+IF\s+NOT\s+EXISTS|OR\s+REPLACE)\b", re.I)
SAMPLE_DATABASE = "wikimedia_prod"


def build_sample_database_sql(fresh_steps: set[tuple[int, int]]) -> str:
    """The text of `sql/sample_database.sql`: every migration, their records, the sample data.

    Generated (`flask --app service build-sample-sql`) so it can never drift from the migrations;
    a test loads it with the mysql client and compares its tables and columns with a migrated
    database. The mysql client cannot evaluate the migrations' guards, so the file holds the
    statements a fresh install executes (`fresh_steps`); the Python steps find no legacy key
    there. Loading it twice works: a migration already recorded in `schema_migrations` is
    skipped (the guard is a stored procedure, the one conditional a plain `mysql < file` load
    has on both MySQL 8.0 and MariaDB), records and sample rows are INSERT IGNORE. The sample
    keys' hashes use the public sample secret (`SAMPLE_KEY_HASH_SECRET`).
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
        "-- The sample keys' hashes are keyed with the PUBLIC sample secret: serve this database",
        f"-- with KEY_HASH_SECRET={SAMPLE_KEY_HASH_SECRET}",
        "-- for local trials only, never in production (docs/operations.md, 'Key hash secret').",
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
        statements = [
            step.sql
            for index, step in enumerate(migration.steps(), start=1)
            if step.sql is not None and (migration.version, index) in fresh_steps
        ]
        body = "\n\n".join(statement + ";" for statement in statements)
        parts.append(f"-- ---- migration {migration.path.name} ----")
        if all(_IDEMPOTENT_FORM.match(s) for s in statements):
            parts += [body, "", record, ""]
            continue
        procedure = f"wme_sample_migration_{migration.version:04d}"
        parts += [
            f"DROP PROCEDURE IF EXISTS {procedure};",
            "DELIMITER //",
            f"CREATE PROCEDURE {procedure}()",
            "BEGIN",
            f"  IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = "
            f"{migration.version}) THEN",
            body,
            record,
            "  END IF;",
            "END//",
            "DELIMITER ;",
            f"CALL {procedure}();",
            f"DROP PROCEDURE {procedure};",
            "",
        ]
    for path in SAMPLE_DATA_FILES:
        text = render_key_hashes(path.read_text(encoding="utf-8").strip(), SAMPLE_KEY_HASH_SECRET)
        parts += [f"-- ---- sample data {path.name} ----", text, ""]
    return "\n".join(parts)
