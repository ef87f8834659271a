"""Schema: versioned migrations, sql/sample_database.sql, and the sample data.

Migrations are applied in order and recorded in `schema_migrations`; a re-run is a no-op.
`sql/sample_database.sql` (generated) loads with the mysql client and yields exactly the tables and
columns of the migrations. Sample data loads only when asked, and loading it twice changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest

from assertions import table_counts
from service import migrations
from testkit import (
    BASE_SETTINGS,
    ROOT,
    Sql,
    fresh_database,
    invoke,
    key_hash,
    make_app,
    new_database_name,
    root_connection,
)

MIGRATION_FILES = sorted((ROOT / "sql" / "migrations").glob("*.sql"))
SAMPLE_SQL = ROOT / "sql" / "sample_database.sql"
TABLES = {
    "users",
    "api_keys",
    "audit_logs",
    "articles",
    "schema_migrations",
    "schema_migrations_lock",
    "auth_failures",
    "auth_failure_salts",
}


def recorded(sql) -> list[dict]:
    return sql.all("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY 1")


def versions(sql) -> list[dict]:
    return sql.all("SELECT version, name, checksum FROM schema_migrations ORDER BY version")


def shape(database: str) -> dict[str, list]:
    """Tables, columns (in order, with type, nullability, default), indexes and views."""
    conn = root_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
                (database,),
            )
            tables = [tuple(r.values()) for r in cur.fetchall()]
            cur.execute(
                "SELECT TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, "
                "COLUMN_DEFAULT, EXTRA, CHARACTER_SET_NAME, COLLATION_NAME "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION",
                (database,),
            )
            columns = [tuple(r.values()) for r in cur.fetchall()]
            cur.execute(
                "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
                (database,),
            )
            indexes = [tuple(r.values()) for r in cur.fetchall()]
            cur.execute(
                "SELECT TABLE_NAME, SECURITY_TYPE FROM information_schema.VIEWS "
                "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
                (database,),
            )
            views = [tuple(r.values()) for r in cur.fetchall()]
    finally:
        conn.close()
    return {"tables": tables, "columns": columns, "indexes": indexes, "views": views}


# ---------------------------------------------------------------------------------------------
# Migrations


def test_migrate_applies_every_migration_in_order_and_records_it():
    assert MIGRATION_FILES, "no migrations found"
    with fresh_database(migrate=False) as name:
        app = make_app(name)
        result = invoke(app, "migrate")
        assert result.exit_code == 0, result.output
        assert f"{len(MIGRATION_FILES)} migration(s) applied" in result.stdout
        # Applied in file order: the progress lines on stderr name each file in turn.
        applied = re.findall(r"^applied (\S+)$", result.stderr, re.M)
        assert applied == [p.name for p in MIGRATION_FILES]
        sql = Sql(name)
        try:
            rows = recorded(sql)
        finally:
            sql.close()
    assert [r["version"] for r in rows] == list(range(1, len(MIGRATION_FILES) + 1))
    for row, path in zip(rows, MIGRATION_FILES, strict=True):
        assert path.name == f"{row['version']:04d}_{row['name']}.sql"
        assert row["checksum"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row["applied_at"] is not None


def test_migrate_creates_the_database_when_missing():
    name = new_database_name()
    try:
        result = invoke(make_app(name), "migrate")
        assert result.exit_code == 0, result.output
        sql = Sql(name)
        try:
            assert sql.value("SELECT MAX(version) FROM schema_migrations") == len(MIGRATION_FILES)
        finally:
            sql.close()
    finally:
        conn = root_connection()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_rerunning_migrate_is_a_noop(app, sql, database):
    before_rows, before_shape = recorded(sql), shape(database)
    result = invoke(app, "migrate")
    assert result.exit_code == 0, result.output
    assert "0 migration(s) applied" in result.stdout
    assert "applied 0" not in result.stderr
    assert recorded(sql) == before_rows  # same applied_at: nothing was re-recorded
    assert shape(database) == before_shape


def test_every_migration_statement_ran(database):
    for migration in migrations.available():
        assert migration.statements(), f"{migration.path.name} has no statement"
    found = shape(database)
    assert {t for t, kind in found["tables"] if kind == "BASE TABLE"} == TABLES
    assert ("masked_audit_logs", "DEFINER") in found["views"]
    columns = {(t, c) for t, _, c, *_ in found["columns"]}
    # 0002 ran to the end: the plain-text key columns are gone, hash and prefix are there.
    assert ("api_keys", "api_key") not in columns
    assert ("audit_logs", "api_key") not in columns
    assert {("api_keys", "key_hash"), ("api_keys", "key_prefix"), ("api_keys", "scopes")} <= columns
    assert ("masked_audit_logs", "masked_key") in columns
    unique = {(t, i) for t, i, _, _, non_unique in found["indexes"] if non_unique == 0}
    assert ("api_keys", "uq_api_keys_key_hash") in unique
    assert ("articles", "uq_articles_url") in unique


# ---------------------------------------------------------------------------------------------
# sql/sample_database.sql


def test_sample_database_sql_is_up_to_date(app):
    assert SAMPLE_SQL.is_file(), "run: flask --app service build-sample-sql"
    result = invoke(app, "build-sample-sql", "--check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_build_sample_sql_check_fails_when_the_file_is_stale(app, tmp_path, monkeypatch):
    stale = tmp_path / "sample_database.sql"
    stale.write_text(SAMPLE_SQL.read_text() + "\n-- edited by hand\n")
    monkeypatch.setattr(migrations, "SAMPLE_DATABASE_FILE", stale)
    assert invoke(app, "build-sample-sql", "--check").exit_code == 1
    assert invoke(app, "build-sample-sql").exit_code == 0  # rewrites the (temporary) file
    assert invoke(app, "build-sample-sql", "--check").exit_code == 0
    assert stale.read_text() == SAMPLE_SQL.read_text()


def mysql_client_load(text: str) -> subprocess.CompletedProcess:
    argv = [
        "mysql",
        "--protocol=tcp",
        f"-h{BASE_SETTINGS['DB_HOST']}",
        f"-P{BASE_SETTINGS['DB_PORT']}",
        f"-u{BASE_SETTINGS['DB_USER']}",
    ]
    if BASE_SETTINGS["DB_PASS"]:
        argv.append(f"-p{BASE_SETTINGS['DB_PASS']}")
    return subprocess.run(argv, input=text, capture_output=True, text=True, timeout=60)


def sample_sql_for(name: str) -> str:
    """sql/sample_database.sql aimed at database `name` instead of wikimedia_prod."""
    original = SAMPLE_SQL.read_text(encoding="utf-8")
    create = "CREATE DATABASE IF NOT EXISTS `wikimedia_prod`"
    use = "USE `wikimedia_prod`;"
    assert original.count(create) == 1 and original.count(use) == 1
    text = original.replace(create, f"CREATE DATABASE IF NOT EXISTS `{name}`").replace(
        use, f"USE `{name}`;"
    )
    assert "wikimedia_prod" not in text  # never touch the real database
    return text


@pytest.fixture
def loaded_sample_database():
    """sql/sample_database.sql loaded by the mysql client into a fresh database (not prod)."""
    name = new_database_name("s")
    try:
        loaded = mysql_client_load(sample_sql_for(name))
        assert loaded.returncode == 0, loaded.stderr
        yield name
    finally:
        conn = root_connection()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_sample_database_sql_gives_the_same_schema_as_the_migrations(loaded_sample_database):
    with fresh_database(sample=True) as migrated:
        expected = shape(migrated)
        sql = Sql(migrated)
        try:
            expected_records = versions(sql)
            expected_counts = table_counts(sql)
        finally:
            sql.close()
    got = shape(loaded_sample_database)
    assert got["tables"] == expected["tables"]
    assert got["columns"] == expected["columns"]
    assert got["indexes"] == expected["indexes"]
    assert got["views"] == expected["views"] == [("masked_audit_logs", "DEFINER")]
    sql = Sql(loaded_sample_database)
    try:
        # The file records the migrations as applied (so `migrate` after it is a no-op) ...
        assert versions(sql) == expected_records
        # ... and holds the same sample rows as `migrate` + `load-sample-data`.
        assert table_counts(sql) == expected_counts
        assert sql.value("SELECT COUNT(*) FROM masked_audit_logs") == expected_counts["audit_logs"]
    finally:
        sql.close()


def test_sample_database_sql_loads_twice_and_changes_nothing_the_second_time(
    loaded_sample_database,
):
    # Before: the second load stopped at `Duplicate entry '1' for key 'PRIMARY'`.
    sql = Sql(loaded_sample_database)
    try:
        sql.run("UPDATE api_keys SET calls_made = 3, last_reset = UTC_DATE() WHERE id = 1")
        before = (shape(loaded_sample_database), versions(sql), table_counts(sql))
        again = mysql_client_load(sample_sql_for(loaded_sample_database))
        assert (again.returncode, again.stderr) == (0, "")
        assert (shape(loaded_sample_database), versions(sql), table_counts(sql)) == before
        assert sql.value("SELECT calls_made FROM api_keys WHERE id = 1") == 3  # rows kept
        assert (
            sql.value(  # the guards leave nothing behind
                "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()"
            )
            == 0
        )
    finally:
        sql.close()


def test_migrate_after_loading_sample_database_sql_is_a_noop(loaded_sample_database):
    result = invoke(make_app(loaded_sample_database), "migrate")
    assert result.exit_code == 0, result.output
    assert "0 migration(s) applied" in result.stdout


# ---------------------------------------------------------------------------------------------
# Sample data


def test_a_migrated_database_holds_no_sample_data(sql):
    counts = table_counts(sql)
    assert counts["users"] == counts["api_keys"] == counts["articles"] == 0
    assert counts["audit_logs"] == 0


def test_load_sample_data_loads_users_keys_and_articles(app, sql):
    result = invoke(app, "load-sample-data")
    assert result.exit_code == 0, result.output
    users = sql.all("SELECT id, username, email, permission_level FROM users ORDER BY id")
    assert [(u["username"], u["email"], u["permission_level"]) for u in users] == [
        ("data_importer", "importer@example.com", "write"),
        ("api_consumer", "consumer@example.com", "read"),
    ]
    keys = sql.all(
        "SELECT user_id, key_hash, key_prefix, scopes, rate_limit, is_valid, expires_at "
        "FROM api_keys ORDER BY id"
    )
    abc, def_ = keys
    assert abc["key_hash"] == key_hash("key_ABC123")
    assert (abc["user_id"], abc["key_prefix"], abc["rate_limit"]) == (1, "key_AB", 5)
    assert set(abc["scopes"].split(",")) == {"export", "import"}
    assert def_["key_hash"] == key_hash("key_DEF456")
    assert (def_["user_id"], def_["key_prefix"]) == (2, "key_DE")
    assert set(def_["scopes"].split(",")) == {"export", "audit"}
    assert def_["rate_limit"] >= 24 * 60  # a monitor run every minute, all day
    assert all(k["is_valid"] == 1 and k["expires_at"] is None for k in keys)
    articles = sql.all("SELECT title, url, language, summary, updated_at FROM articles")
    assert len(articles) >= 30
    for article in articles:
        assert article["url"].startswith("https://"), article["url"]
        assert article["title"].strip() and article["summary"].strip()
        assert re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", article["language"])
        assert article["updated_at"] is not None
    dump = sql.dump()
    assert "key_ABC123" not in dump and "key_DEF456" not in dump


def test_load_sample_data_twice_changes_nothing(app, sql):
    assert invoke(app, "load-sample-data").exit_code == 0
    counts = table_counts(sql)
    articles = sql.all("SELECT * FROM articles ORDER BY id")
    keys = sql.all("SELECT * FROM api_keys ORDER BY id")
    assert invoke(app, "load-sample-data").exit_code == 0
    assert table_counts(sql) == counts
    assert sql.all("SELECT * FROM articles ORDER BY id") == articles
    assert sql.all("SELECT * FROM api_keys ORDER BY id") == keys
