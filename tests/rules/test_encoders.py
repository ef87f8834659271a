"""The one RFC 3339 formatter and the audit rows' timestamps (the export's articles are formed by
the database and held to the schema in tests/database/test_ndjson_sql.py)."""

import functools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import jsonify
from hypothesis import given, settings
from hypothesis import strategies as st

from service import create_app
from service.clock import rfc3339
from service.errors import ErrorCode, error_response
from service.logging_setup import log_timestamp
from service.schemas import AuditRowOut
from testkit import BASE_SETTINGS


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


# The log line's timestamp keeps the text of the current second between lines: the same text as
# rfc3339() of the same instant, whatever the fraction (rounded to microseconds as datetime does).
@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False, allow_infinity=False))
def test_log_timestamps_are_rfc3339_with_milliseconds(created):
    expected = rfc3339(datetime.fromtimestamp(created, UTC), milliseconds=True)
    assert log_timestamp(created) == expected


@pytest.mark.parametrize(
    "created",
    [0.0, 1_764_806_399.9994999, 1_764_806_399.9995, 1_764_806_399.9999996, 1.0019996, 1.0025],
)
def test_log_timestamps_at_rounding_edges(created):
    expected = rfc3339(datetime.fromtimestamp(created, UTC), milliseconds=True)
    assert log_timestamp(created) == expected


def test_log_timestamps_of_two_seconds_in_turn_keep_their_own_second():
    assert log_timestamp(100.5) == "1970-01-01T00:01:40.500Z"
    assert log_timestamp(200.25) == "1970-01-01T00:03:20.250Z"
    assert log_timestamp(100.75) == "1970-01-01T00:01:40.750Z"


@functools.cache
def app_without_database():
    return create_app(BASE_SETTINGS)  # create_app opens no connection


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


# error_response() encodes with one prebuilt encoder instead of jsonify(): the same bytes.
@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([400, 401, 403, 404, 405, 413, 429, 500, 503]),
    code=st.sampled_from(list(ErrorCode)),
    message=TEXT,
    details=st.none() | st.lists(st.fixed_dictionaries({"field": TEXT, "message": TEXT})),
    extra=st.none() | st.dictionaries(st.sampled_from(["reset_at", "limit"]), TEXT | st.integers()),
)
def test_error_bodies_are_what_jsonify_writes(status, code, message, details, extra):
    app = app_without_database()
    with app.test_request_context("/api/export"):
        response = error_response(status, code, message, details=details, extra=extra)
        body = {"code": str(code), "message": message, **(extra or {})}
        if details:
            body["details"] = details
        reference = jsonify(error=body)
    assert response.get_data() == reference.get_data()
    assert response.status_code == status
    assert response.mimetype == reference.mimetype == "application/json"


def test_error_bodies_in_debug_mode_are_still_jsonify_s():
    app = create_app(BASE_SETTINGS)  # create_app opens no connection
    app.debug = True
    with app.test_request_context("/api/export"):
        message = "Daily quota of 5 requests"
        response = error_response(429, ErrorCode.QUOTA_EXCEEDED, message)
        reference = jsonify(error={"code": "quota_exceeded", "message": message})
    assert response.get_data() == reference.get_data()
    assert b"\n  " in response.get_data()  # indented, as jsonify does in debug mode
