"""`limit` says the real bounds of the format asked for; the audit trail lists rows by id (the
order they were recorded), which docs/api.md states, with timestamps at one fixed precision."""

from __future__ import annotations

import pytest

from service.schemas import MAX_PAGE, MAX_STREAM

DEF = {"X-API-Key": "key_DEF456"}
JSON_BOUNDS = (
    f"Must be from 1 to {MAX_PAGE} with format=json (the default); "
    f"format=ndjson streams up to {MAX_STREAM}."
)
NDJSON_BOUNDS = f"Must be from 1 to {MAX_STREAM} with format=ndjson."


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", JSON_BOUNDS),  # before: "... less than or equal to 10000000."
        ("limit=1001", JSON_BOUNDS),  # before: "... less than or equal to 1000."
        ("limit=-5&format=json", JSON_BOUNDS),
        ("limit=0&format=ndjson", NDJSON_BOUNDS),
        (f"limit={MAX_STREAM + 1}&format=ndjson", NDJSON_BOUNDS),
    ],
)
def test_export_limit_errors_state_the_bounds_of_the_format(client, seeded, query, message):
    response = client.get(f"/api/export?{query}", headers=DEF)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["details"] == [{"field": "limit", "message": message}]
    assert error["message"] == f"invalid parameter 'limit': {message}"


@pytest.mark.parametrize("limit", ["0", "1001"])
def test_audit_limit_errors_state_its_bounds(client, seeded, limit):
    response = client.get(f"/api/audit?limit={limit}", headers=DEF)
    assert response.status_code == 400
    assert response.get_json()["error"]["details"] == [
        {"field": "limit", "message": f"Must be from 1 to {MAX_PAGE}."}
    ]


def test_the_largest_limits_of_each_format_are_accepted(client, seeded):
    assert client.get(f"/api/export?limit={MAX_PAGE}", headers=DEF).status_code == 200
    streamed = client.get(f"/api/export?format=ndjson&limit={MAX_STREAM}", headers=DEF)
    assert streamed.status_code == 200


def test_audit_lists_by_id_even_when_timestamps_go_backwards(client, seeded):
    # Rows reach the table in batches from several workers (and late after an outage), so the
    # order of recording is the id; a reader paging with the cursor never misses a late row.
    seeded.run("DELETE FROM audit_logs")
    for row_id, stamp in (
        (10, "2026-12-02 10:00:05.000"),
        (11, "2026-12-02 10:00:01.152"),
        (12, "2026-12-02 10:00:03.000"),
    ):
        seeded.run(
            "INSERT INTO audit_logs (id, key_id, key_prefix, method, endpoint, response_code, "
            "response_time_ms, `timestamp`) VALUES (%s, 2, 'key_DE', 'GET', '/api/export', 200, "
            "1, %s)",
            (row_id, stamp),
        )
    response = client.get("/api/audit?endpoint=/api/export", headers=DEF)
    rows = response.get_json()["data"]
    assert [(r["id"], r["timestamp"]) for r in rows] == [
        (12, "2026-12-02T10:00:03.000Z"),
        (11, "2026-12-02T10:00:01.152Z"),
        (10, "2026-12-02T10:00:05.000Z"),
    ]
