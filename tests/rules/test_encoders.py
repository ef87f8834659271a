"""The one RFC 3339 formatter and the audit rows' timestamps (the export's articles are formed by
the database and held to the schema in tests/database/test_ndjson_sql.py)."""

from datetime import UTC, datetime, timedelta, timezone

from service.clock import rfc3339
from service.schemas import AuditRowOut


def test_rfc3339_converts_aware_values():
    aware = datetime(2024, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(aware) == "2024-06-01T10:00:00Z"
    assert rfc3339(aware.astimezone(UTC)) == "2024-06-01T10:00:00Z"


def test_audit_timestamps_always_carry_milliseconds():
    # Before: `.152Z` next to `10Z` in one response (milliseconds only when not zero).
    rows = [
        {"timestamp": datetime(2026, 12, 2, 4, 35, 10, 152000)},
        {"timestamp": datetime(2026, 12, 2, 4, 35, 10)},
    ]
    assert [r["timestamp"] for r in AuditRowOut(many=True, only=["timestamp"]).dump(rows)] == [
        "2026-12-02T04:35:10.152Z",
        "2026-12-02T04:35:10.000Z",
    ]
    assert rfc3339(datetime(2026, 12, 2, 0, 0), milliseconds=True) == "2026-12-02T00:00:00.000Z"
