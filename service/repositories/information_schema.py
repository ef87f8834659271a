"""What the connected database's schema holds right now: the guards of resumable migrations."""

from __future__ import annotations

COLUMN = """
SELECT LOWER(data_type) AS data_type, is_nullable = 'YES' AS nullable
  FROM information_schema.columns
 WHERE table_schema = DATABASE() AND table_name = %(table)s AND column_name = %(column)s
"""

INDEX = """
SELECT COUNT(*) AS n
  FROM information_schema.statistics
 WHERE table_schema = DATABASE() AND table_name = %(table)s AND index_name = %(index)s
"""

TABLE = """
SELECT COUNT(*) AS n
  FROM information_schema.tables
 WHERE table_schema = DATABASE() AND table_name = %(table)s
"""


def column(cur, table: str, name: str) -> dict | None:
    """{'data_type': 'datetime', 'nullable': 1}, or None when the column does not exist."""
    cur.execute(COLUMN, {"table": table, "column": name})
    return cur.fetchone()


def has_column(cur, table: str, name: str) -> bool:
    return column(cur, table, name) is not None


def has_index(cur, table: str, name: str) -> bool:
    cur.execute(INDEX, {"table": table, "index": name})
    return cur.fetchone()["n"] > 0


def has_table(cur, table: str) -> bool:
    cur.execute(TABLE, {"table": table})
    return cur.fetchone()["n"] > 0
