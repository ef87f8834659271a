"""The audit writer's batch INSERT (one JSON parameter read back by JSON_TABLE) stores exactly what
a plain parameterised INSERT of each row stores: the same values, NULLs, times to the
millisecond, in the same order, on hostile, generated and boundary rows; and a batch sent again
adds nothing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.repositories import audit_logs

# The reference: one row, each value bound by the driver (what the writer did before batches).
ONE_ROW = (
    "INSERT INTO audit_logs (key_id, key_prefix, method, endpoint, response_code, "
    "response_time_ms, `timestamp`, request_id, error_code, audit_uid) VALUES (%(key_id)s, "
    "%(key_prefix)s, %(method)s, %(endpoint)s, %(response_code)s, %(response_time_ms)s, "
    "%(timestamp)s, %(request_id)s, %(error_code)s, %(audit_uid)s)"
)
STORED = (
    "SELECT key_id, key_prefix, method, endpoint, response_code, response_time_ms, `timestamp`, "
    "request_id, error_code FROM audit_logs ORDER BY id"
)
STORABLE = st.characters(exclude_categories=("Cs",))  # any code point UTF-8 text can hold
HOSTILE = [
    'q"\\/',
    "\n\r\t\x00\x01",
    "\\u000B",
    "é中😀\U0010ffff",
    "\u2028\ufeff",
    "%s{}",
    "'; --",
]


def row(**values) -> dict:
    base = {
        "key_id": 7,
        "key_prefix": "wk_AbC",
        "method": "GET",
        "endpoint": "/api/export",
        "response_code": 200,
        "response_time_ms": 3,
        "timestamp": datetime(2026, 12, 2, 23, 59, 59, 999_999),
        "request_id": "0" * 32,
        "error_code": None,
    }
    return {**base, **values, "audit_uid": os.urandom(16).hex()}


def stored_both_ways(sql, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The rows stored one by one through ONE_ROW, then as one batch; each as read back."""
    sql.run("DELETE FROM audit_logs")
    for one in rows:
        sql.run(ONE_ROW, one)
    reference = sql.all(STORED)
    sql.run("DELETE FROM audit_logs")
    batch = [{**one, "audit_uid": os.urandom(16).hex()} for one in rows]
    with sql.conn.cursor() as cur:
        assert audit_logs.insert_many(cur, batch) == len(rows)
    return reference, sql.all(STORED)


def test_hostile_and_boundary_values_are_stored_as_one_row_inserts_store_them(sql):
    rows = [row(key_prefix=text[:6], method=text[:10], endpoint=text) for text in HOSTILE]
    rows += [
        row(key_id=None, key_prefix=None, method=None, request_id=None, error_code="missing_key"),
        row(key_id=2**31 - 1, response_code=599, response_time_ms=2**31 - 1),
        row(endpoint="/" + "é" * 254, request_id="f" * 64, error_code="x" * 32),
        row(timestamp=datetime(2026, 1, 1)),  # no fraction: isoformat leaves it out
        row(timestamp=datetime(2026, 1, 1, 0, 0, 0, 1500)),  # cut to the millisecond
        row(timestamp=datetime(2026, 6, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=7)),
    ]
    reference, batched = stored_both_ways(sql, rows)
    assert batched == reference
    assert len(batched) == len(rows)
    assert [r["endpoint"] for r in batched[: len(HOSTILE)]] == HOSTILE


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.fixed_dictionaries(
            {
                "key_prefix": st.none() | st.text(STORABLE, max_size=6),
                "method": st.text(STORABLE, max_size=10),
                "endpoint": st.text(STORABLE, max_size=255),
                "response_code": st.integers(100, 599),
                "response_time_ms": st.integers(0, 2**31 - 1),
                "timestamp": st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)),
                "error_code": st.none() | st.text(STORABLE, max_size=32),
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_row_is_stored_as_a_one_row_insert_stores_it(sql, values):
    reference, batched = stored_both_ways(sql, [row(**v) for v in values])
    assert batched == reference


def test_a_batch_sent_again_adds_nothing_and_keeps_its_order(sql):
    rows = [row(response_time_ms=n) for n in range(50)]
    with sql.conn.cursor() as cur:
        assert audit_logs.insert_many(cur, rows) == 50
        assert audit_logs.insert_many(cur, rows) == 0
        assert audit_logs.insert_many(cur, rows[:10] + [row(response_time_ms=50)]) == 1
    assert [r["response_time_ms"] for r in sql.all(STORED)] == list(range(51))
