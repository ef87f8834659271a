"""TICKET-002, least privilege: sql/roles.sql gives the service exactly what it needs.

The service runs as `wme_service` (Flask test client and real gunicorn): export, import, quota,
audit listing, /ready and the purge all work, and that account cannot read a key column of
audit_logs nor change the schema. `wme_auditor` reads the masked view and nothing else.

Accounts are global to the server while every test has its own database: each test here takes
the named lock `wme_accounts`, creates the accounts from sql/roles.sql on its own database and
drops them before releasing the lock, so parallel workers never share or leave an account.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql
import pymysql.cursors
import pytest
import requests

from service.cli import purge_audit_logs
from testkit import (
    DB_HOST,
    DB_PASS,
    DB_PORT,
    DB_USER,
    ROOT,
    flush_audit,
    root_connection,
    wait_until,
)

ROLES_SQL = ROOT / "sql" / "roles.sql"
SERVICE, AUDITOR, RETENTION = "wme_service", "wme_auditor", "wme_retention"
ACCOUNTS = (SERVICE, AUDITOR, RETENTION)
LOCK = "wme_accounts"
DEF = {"X-API-Key": "key_DEF456"}  # sample: export, audit
ABC = {"X-API-Key": "key_ABC123"}  # sample: export, import; 5 calls a day
ARTICLE = {
    "title": "T",
    "url": "https://en.wikipedia.org/wiki/T",
    "language": "en",
    "summary": "S",
    "updated_at": "2026-01-01T00:00:00Z",
}
# Table- and column-level "command denied"; 1044: access denied to a whole database.
DENIED = {1142, 1143}

# `database` (on which app_factory and serve build) holds the sample data here.
pytestmark = [pytest.mark.xdist_group("db_accounts"), pytest.mark.sample_data]


def mysql_client(database: str, script: Path) -> None:
    """Apply an SQL file exactly as the operator does: the mysql client, as root."""
    env = {**os.environ}
    if DB_PASS:
        env["MYSQL_PWD"] = DB_PASS
    argv = ["mysql", f"-u{DB_USER}", f"-h{DB_HOST}", f"-P{DB_PORT}", "--protocol=TCP", database]
    with script.open("rb") as stdin:
        done = subprocess.run(argv, stdin=stdin, capture_output=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def drop_accounts(cur) -> None:
    for user in ACCOUNTS:
        cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))


def connect_as(user: str, password: str, database: str) -> pymysql.Connection:
    return root_connection(database, user=user, password=password)


def error_number(conn: pymysql.Connection, statement: str) -> int | None:
    """The MySQL error number the statement fails with, or None if it succeeds."""
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            cur.fetchall()
    except pymysql.MySQLError as exc:
        return exc.args[0]
    return None


@dataclass
class Accounts:
    database: str
    passwords: dict[str, str]

    def connect(self, user: str) -> pymysql.Connection:
        return connect_as(user, self.passwords[user], self.database)

    def unlock(self, cur, user: str) -> None:
        password = secrets.token_urlsafe(24)
        # What roles.sql tells the operator to run.
        cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s ACCOUNT UNLOCK", (user, password))
        self.passwords[user] = password


@pytest.fixture
def roles(database) -> Iterator[tuple[Accounts, pymysql.cursors.DictCursor]]:
    """roles.sql applied to a migrated database with sample data; accounts still locked."""
    conn = root_connection()
    cur = conn.cursor()
    cur.execute("SELECT GET_LOCK(%s, 60) AS got", (LOCK,))
    assert cur.fetchone()["got"] == 1, "another test held the accounts for 60 s"
    try:
        drop_accounts(cur)  # an interrupted earlier run may have left them
        mysql_client(database, ROLES_SQL)
        yield Accounts(database, {}), cur
    finally:
        drop_accounts(cur)
        cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK,))
        conn.close()


@pytest.fixture
def accounts(roles) -> Accounts:
    """Every account unlocked with random passwords, as the operator would."""
    found, cur = roles
    for user in ACCOUNTS:
        found.unlock(cur, user)
    return found


def as_utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# The file itself


def test_roles_sql_names_no_database_and_holds_no_password():
    text = ROLES_SQL.read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    assert "mysql -u root wikimedia_prod < sql/roles.sql" in text, "usage documented at the top"
    assert "ACCOUNT UNLOCK" in text, "the operator is told how to set a password and unlock"
    assert not re.search(r"\bUSE\b", code, re.IGNORECASE)
    assert not re.search(r"\bON\s+[`\w]+\s*\.", code, re.IGNORECASE), "grants are unqualified"
    assert not re.search(r"IDENTIFIED|PASSWORD", code, re.IGNORECASE)
    for user in ACCOUNTS:
        assert re.search(rf"CREATE USER IF NOT EXISTS '{user}'@'%' ACCOUNT LOCK;", code)


def test_new_accounts_are_locked_until_the_operator_unlocks_them(roles):
    found, cur = roles
    password = secrets.token_urlsafe(24)
    cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (SERVICE, password))
    with pytest.raises(pymysql.MySQLError) as refused:
        connect_as(SERVICE, password, found.database)
    # MariaDB 4151 / MySQL 3118: "Access denied, this account is locked".
    assert refused.value.args[0] in {3118, 4151}, refused.value
    found.unlock(cur, SERVICE)
    found.connect(SERVICE).close()


def test_roles_sql_reruns_without_error_and_keeps_password_and_grants(accounts, sql):
    def grants() -> dict[str, list[str]]:
        return {
            user: sorted(r.popitem()[1] for r in sql.all("SHOW GRANTS FOR %s@'%%'", (user,)))
            for user in ACCOUNTS
        }

    before = grants()
    mysql_client(accounts.database, ROLES_SQL)
    mysql_client(accounts.database, ROLES_SQL)
    assert grants() == before
    # Neither re-locked nor given a new password: the running service keeps working.
    for user in ACCOUNTS:
        accounts.connect(user).close()


# ---------------------------------------------------------------------------------------------
# The service as wme_service


def test_service_works_as_the_service_account(accounts, app_factory, sql):
    app = app_factory(DB_USER=SERVICE, DB_PASS=accounts.passwords[SERVICE])
    client = app.test_client()

    assert client.get("/ready").status_code == 200
    # A wrong key is counted against its address (auth_failures) with the service's grants.
    wrong = client.get("/api/export", headers={"X-API-Key": "key_WRONG1"})
    assert wrong.status_code == 401, wrong.get_data(as_text=True)
    assert sql.value("SELECT SUM(failures) FROM auth_failures") == 1
    exported = [client.get("/api/export?limit=3", headers=DEF) for _ in range(2)]
    assert [r.status_code for r in exported] == [200, 200]
    assert len(exported[0].get_json()["data"]) == 3
    assert [r.headers["X-RateLimit-Remaining"] for r in exported] == ["9999", "9998"]

    imported = [client.post("/api/import", json=[ARTICLE], headers=ABC) for _ in range(2)]
    assert [r.status_code for r in imported] == [200, 200], imported[0].get_data(as_text=True)
    assert imported[0].get_json()["imported"] == 1
    assert [r.headers["X-RateLimit-Remaining"] for r in imported] == ["4", "3"]
    assert sql.value("SELECT COUNT(*) FROM articles WHERE url = %s", (ARTICLE["url"],)) == 1
    assert sql.all("SELECT id, calls_made FROM api_keys ORDER BY id") == [
        {"id": 1, "calls_made": 2},
        {"id": 2, "calls_made": 2},
    ]

    # The audit writer inserts as wme_service: a refused INSERT would leave rows waiting.
    flush_audit(app)
    listed = client.get("/api/audit?limit=100", headers=DEF)
    assert listed.status_code == 200
    rows = listed.get_json()["data"]
    by_request = {r["request_id"]: r for r in rows}
    for response in exported:
        row = by_request[response.headers["X-Request-ID"]]
        assert row["masked_key"] == "key_DE..." and row["endpoint"] == "/api/export"
    # A client's audit key sees its own user's rows only: none of key_ABC123's imports.
    assert {r["masked_key"] for r in rows} == {"key_DE..."}
    assert "key_DEF456" not in listed.get_data(as_text=True)

    # Retention as wme_retention, its own account: the function (the sample's three 2023 rows)
    flush_audit(app)  # the listing's own row, so the counts below stay still
    cutoff = datetime.now(UTC) - timedelta(days=90)
    before = sql.value("SELECT COUNT(*) FROM audit_logs")
    with pytest.raises(pymysql.MySQLError) as refused:
        purge_audit_logs(accounts.connect(SERVICE), cutoff, batch=2)
    assert refused.value.args[0] in DENIED, "the service account cannot erase the trail"
    assert purge_audit_logs(accounts.connect(RETENTION), cutoff, batch=2) == 3
    assert sql.value("SELECT COUNT(*) FROM audit_logs") == before - 3
    assert (
        sql.value("SELECT COUNT(*) FROM audit_logs WHERE `timestamp` < %s", (as_utc_naive(cutoff),))
        == 0
    )
    # ... and the CLI command with the app's settings.
    sql.run(
        "INSERT INTO audit_logs (key_id, key_prefix, endpoint, response_code, response_time_ms, "
        "`timestamp`) VALUES (2, 'key_DE', '/api/export', 200, 1, %s), "
        "(2, 'key_DE', '/api/export', 200, 1, %s)",
        (datetime(2020, 1, 1), as_utc_naive(cutoff - timedelta(days=1))),
    )
    # `flask` pushes an app context before a command; Flask's test runner does not (see the report
    # on service/cli.py), so it is pushed here as `flask` would.
    purger = app_factory(DB_USER=RETENTION, DB_PASS=accounts.passwords[RETENTION])
    with purger.app_context():
        result = purger.test_cli_runner().invoke(
            args=["purge-audit-logs", "--batch", "2", "--pause", "0"]
        )
    assert result.exit_code == 0, result.output
    assert "purged 2 audit row(s)" in result.output
    assert sql.value("SELECT COUNT(*) FROM audit_logs") == before - 3


@pytest.mark.e2e
def test_gunicorn_serves_as_the_service_account(accounts, serve, sql):
    served = serve(
        accounts.database,
        extra_env={"DB_USER": SERVICE, "DB_PASS": accounts.passwords[SERVICE]},
    )
    assert requests.get(served.url + "/ready", timeout=5).status_code == 200
    exported = [
        requests.get(served.url + "/api/export?limit=2", headers=DEF, timeout=5) for _ in range(3)
    ]
    assert [r.status_code for r in exported] == [200] * 3
    assert all(len(r.json()["data"]) == 2 for r in exported)
    assert [r.headers["X-RateLimit-Remaining"] for r in exported] == ["9999", "9998", "9997"]

    imported = requests.post(served.url + "/api/import", json=[ARTICLE], headers=ABC, timeout=5)
    assert imported.status_code == 200, imported.text
    assert imported.headers["X-RateLimit-Remaining"] == "4"
    assert sql.value("SELECT title FROM articles WHERE url = %s", (ARTICLE["url"],)) == "T"

    ids = [r.headers["X-Request-ID"] for r in exported]
    # Workers flush their audit buffers every 0.2 s (BASE_SETTINGS).
    wait_until(
        lambda: (
            sql.value("SELECT COUNT(*) FROM audit_logs WHERE request_id IN %s", (ids,)) == len(ids)
        )
    )
    listed = requests.get(served.url + "/api/audit?limit=100", headers=DEF, timeout=5)
    assert listed.status_code == 200
    shown = {r["request_id"]: r["masked_key"] for r in listed.json()["data"]}
    assert {shown.get(i) for i in ids} == {"key_DE..."}

    assert served.stop() == 0
    log = served.log_text()
    # A missing grant shows up as error 1142/1143 in the service's log, or as a failed write.
    assert not re.search(r"114[23]|denied|audit write failed|audit writer error", log), log


# ---------------------------------------------------------------------------------------------
# What the accounts cannot do


def test_service_account_cannot_read_audit_keys_nor_change_the_schema(accounts, sql):
    conn = accounts.connect(SERVICE)
    try:
        # What it may do, so the refusals below are about columns, not the whole table.
        assert error_number(conn, "SELECT * FROM masked_audit_logs") is None
        assert error_number(conn, "SELECT id, is_active FROM users") is None

        refused = {
            "SELECT key_prefix FROM audit_logs": DENIED,
            "SELECT key_id FROM audit_logs": DENIED,
            "SELECT error_message FROM audit_logs": DENIED,
            "SELECT * FROM audit_logs": DENIED,
            "SELECT id, `timestamp` FROM audit_logs": DENIED,
            "SELECT COUNT(*) FROM audit_logs WHERE key_prefix = 'key_DE'": DENIED,
            # It only ever appends: the trail cannot be erased with its password.
            "DELETE FROM audit_logs": DENIED,
            "DELETE FROM audit_logs WHERE `timestamp` < '2100-01-01' ORDER BY id LIMIT 5": DENIED,
            # A DELETE filtered on a key column would leak it one guess at a time.
            "DELETE FROM audit_logs WHERE key_prefix = 'key_DE'": DENIED,
            "UPDATE audit_logs SET endpoint = 'x'": DENIED,
            "SELECT email FROM users": DENIED,
            "SELECT * FROM users": DENIED,
            "UPDATE api_keys SET scopes = 'export,import,audit,admin'": DENIED,
            "UPDATE api_keys SET rate_limit = 1000000": DENIED,
            "INSERT INTO api_keys (user_id, key_hash, key_prefix) VALUES (1, 'x', 'x')": DENIED,
            "DELETE FROM articles": DENIED,
            "CREATE TABLE x (id int)": DENIED,
            "DROP TABLE articles": DENIED,
            "ALTER TABLE audit_logs ADD COLUMN y INT": DENIED,
            "TRUNCATE TABLE audit_logs": DENIED,
            "CREATE OR REPLACE VIEW masked_audit_logs AS SELECT * FROM audit_logs": DENIED,
            "GRANT SELECT ON audit_logs TO 'wme_auditor'@'%'": DENIED,
            "DROP DATABASE `" + accounts.database + "`": {1044},
        }
        got = {statement: error_number(conn, statement) for statement in refused}
    finally:
        conn.close()
    wrong = {s: n for s, n in got.items() if n not in refused[s]}
    assert not wrong, f"statements not refused as expected (error numbers): {wrong}"
    assert sql.value("SELECT COUNT(*) FROM articles") > 0
    assert sql.value("SELECT COUNT(*) FROM audit_logs WHERE key_prefix = 'key_DE'") == 1


def test_auditor_reads_the_masked_view_and_nothing_else(accounts):
    conn = accounts.connect(AUDITOR)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM masked_audit_logs ORDER BY id")
            rows = cur.fetchall()
            cur.execute("SHOW TABLES")
            visible = [next(iter(r.values())) for r in cur.fetchall()]
        refused = {
            statement: error_number(conn, statement)
            for statement in (
                "SELECT * FROM audit_logs",
                "SELECT id FROM audit_logs",
                "SELECT * FROM api_keys",
                "SELECT key_prefix FROM api_keys",
                "SELECT * FROM users",
                "SELECT * FROM articles",
                "DELETE FROM masked_audit_logs",
            )
        }
    finally:
        conn.close()
    assert [r["masked_key"] for r in rows] == ["key_AB...", "key_AB...", "key_DE..."]
    assert "key_prefix" not in rows[0] and "error_message" not in rows[0]
    assert visible == ["masked_audit_logs"]
    assert all(n in DENIED for n in refused.values()), refused
    # The rows hold no full key; a JSON dump is the easiest full-text check.
    assert "key_ABC123" not in json.dumps(rows, default=str)


def test_retention_account_purges_and_does_nothing_else(accounts, sql):
    conn = accounts.connect(RETENTION)
    try:
        cutoff = "2024-01-01"
        assert (
            error_number(
                conn, f"DELETE FROM audit_logs WHERE `timestamp` < '{cutoff}' ORDER BY id LIMIT 2"
            )
            is None
        )
        refused = {
            statement: error_number(conn, statement)
            for statement in (
                "SELECT key_prefix FROM audit_logs",
                "SELECT * FROM audit_logs",
                "DELETE FROM audit_logs WHERE key_prefix = 'key_DE'",
                "INSERT INTO audit_logs (endpoint, response_code, response_time_ms, `timestamp`) "
                "VALUES ('/x', 200, 1, NOW())",
                "UPDATE audit_logs SET endpoint = 'x'",
                "SELECT * FROM masked_audit_logs",
                "SELECT * FROM api_keys",
                "SELECT * FROM articles",
                "DELETE FROM articles",
                "TRUNCATE TABLE audit_logs",
            )
        }
    finally:
        conn.close()
    assert all(n in DENIED for n in refused.values()), refused
    # The sample's three 2023 rows: two deleted by the one DELETE allowed above.
    assert sql.value("SELECT COUNT(*) FROM audit_logs WHERE `timestamp` < '2024-01-01'") == 1
