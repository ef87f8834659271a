"""Assertions and request headers shared by several test folders (the harness is testkit.py)."""

from __future__ import annotations

import json

DEF = {"X-API-Key": "key_DEF456"}  # user 2 (read): export, audit; 10000 a day
ABC = {"X-API-Key": "key_ABC123"}  # user 1 (write): export, import; 5 a day


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The one JSON error shape; returns the `error` object."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "details", "reset_at", "limit"}, error
    if code is not None:
        assert error["code"] == code, error
    return error


def names_field(error: dict, field: str) -> bool:
    """The error names the field in its message and, when given, in its details."""
    in_message = f"'{field}'" in error["message"]
    in_details = any(d.get("field") == field for d in error.get("details", []))
    return in_message and (in_details or "details" not in error)


def table_counts(sql) -> dict[str, int]:
    tables = [
        next(iter(r.values())) for r in sql.all("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
    ]
    return {t: sql.value(f"SELECT COUNT(*) FROM `{t}`") for t in sorted(tables)}
