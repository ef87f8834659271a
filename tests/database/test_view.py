"""TICKET-002, the masked view: `masked_audit_logs` shows a key as its first 6 characters and
`...`, holds no column that could carry a full key, and is what /api/audit reads."""

from __future__ import annotations

import re

import pytest

from service import migrations
from service.repositories import audit_logs

pytestmark = pytest.mark.reuse_database  # its tests touch audit_logs only

VIEW_MIGRATION = migrations.MIGRATIONS_DIR / "0004_masked_audit_logs.sql"
VIEW_COLUMNS = [
    "id",
    "key_id",
    "masked_key",
    "endpoint",
    "method",
    "response_code",
    "response_time_ms",
    "timestamp",
    "request_id",
    "error_code",
]


def view_definition(sql) -> str:
    return sql.one("SHOW CREATE VIEW masked_audit_logs")["Create View"]


def test_view_runs_with_its_definers_rights(sql):
    assert "SQL SECURITY DEFINER" in view_definition(sql)
    assert (
        sql.value(
            "SELECT SECURITY_TYPE FROM information_schema.VIEWS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'masked_audit_logs'"
        )
        == "DEFINER"
    )


def test_masked_key_is_the_first_six_characters_and_three_dots(sql):
    sql.run(
        "INSERT INTO audit_logs (id, key_id, key_prefix, endpoint, response_code, "
        "response_time_ms, `timestamp`, error_message) VALUES "
        "(1, 1, 'key_AB', '/api/export', 200, 5, '2026-01-01 00:00:00', NULL), "
        "(2, 7, 'wk_Q9z', '/api/audit', 200, 5, '2026-01-01 00:00:01', NULL), "
        "(3, NULL, NULL, '/api/export', 401, 1, '2026-01-01 00:00:02', 'key_ABC123 leaked')"
    )
    rows = sql.all("SELECT id, key_id, masked_key FROM masked_audit_logs ORDER BY id")
    assert rows == [
        {"id": 1, "key_id": 1, "masked_key": "key_AB..."},
        {"id": 2, "key_id": 7, "masked_key": "wk_Q9z..."},
        {"id": 3, "key_id": None, "masked_key": None},
    ]
    assert "key_ABC" not in repr(sql.all("SELECT * FROM masked_audit_logs")), "free text hidden"


def test_view_has_no_column_that_could_hold_a_key(sql):
    columns = sql.all(
        "SELECT COLUMN_NAME AS name, CHARACTER_MAXIMUM_LENGTH AS size "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = 'masked_audit_logs' ORDER BY ORDINAL_POSITION"
    )
    assert [c["name"] for c in columns] == VIEW_COLUMNS
    assert not {"api_key", "key_prefix", "key_hash", "error_message"} & {c["name"] for c in columns}
    # Six characters and "...": the column cannot carry more than that, whatever the table holds.
    assert next(c["size"] for c in columns if c["name"] == "masked_key") == 9


def test_audit_listing_reads_the_view_never_the_table():
    # The strong proof is test_roles.py (the service account cannot read the key columns); this
    # one names the culprit if somebody points the query at the table.
    assert re.search(r"\bFROM\s+masked_audit_logs\b", audit_logs.LIST_MASKED)
    assert not re.search(r"\baudit_logs\b", audit_logs.LIST_MASKED)
    assert "key_prefix" not in audit_logs.LIST_MASKED


def test_create_or_replace_reapplies_cleanly(sql):
    sql.run(
        "INSERT INTO audit_logs (key_id, key_prefix, endpoint, response_code, response_time_ms, "
        "`timestamp`) VALUES (1, 'key_AB', '/api/export', 200, 5, '2026-01-01 00:00:00')"
    )
    before = view_definition(sql)
    statements = migrations.split_statements(VIEW_MIGRATION.read_text(encoding="utf-8"))
    assert len(statements) == 1 and statements[0].startswith("CREATE OR REPLACE")
    for _ in range(2):
        sql.run(statements[0])
    assert view_definition(sql) == before
    assert sql.value("SELECT masked_key FROM masked_audit_logs") == "key_AB..."
