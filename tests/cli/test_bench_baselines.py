"""The benchmark's B4 baseline runs what an admitted export runs when its key's row is cached, and
nothing else: the same quota UPDATE on its own key and the same page, formed by the database as
the service sends it; B5 runs the same two in one CALL, B6 as prepared statements. B4/B2 is
printed as the most F/B2 can be, so none may be cheaper than F's statements (a lighter query or a
missed admission would raise that ceiling)."""

from __future__ import annotations

import json

import pytest

from scripts.benchmark import baseline_app
from scripts.benchmark.seeding import seed
from testkit import DB_SETTINGS, close_app, make_app, root_connection


@pytest.fixture
def seeded(database, monkeypatch):
    conn = root_connection(database)
    try:
        keys = seed(conn, 1)
    finally:
        conn.close()
    for name in ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASS"):
        monkeypatch.setenv(name, str(DB_SETTINGS[name]))
    monkeypatch.setenv("DB_NAME", database)
    monkeypatch.setattr(baseline_app, "B4_ID", keys.ids["B4"])
    monkeypatch.setattr(baseline_app, "B5_ID", keys.ids["B5"])
    monkeypatch.setattr(baseline_app, "B6_ID", keys.ids["B6"])
    monkeypatch.setattr(baseline_app, "_conn", None)
    yield keys
    if baseline_app._conn is not None:
        baseline_app._conn.close()


def calls_made(database: str, label: str) -> int:
    conn = root_connection(database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT calls_made FROM api_keys WHERE label = %s", (label,))
            return cur.fetchone()["calls_made"]
    finally:
        conn.close()


@pytest.mark.parametrize("baseline", ["B4", "B5", "B6"])
def test_the_bare_admission_takes_a_unit_and_sends_the_services_page(database, seeded, baseline):
    app = make_app(database)
    try:
        served = app.test_client().get("/api/export?limit=1", headers={"X-API-Key": seeded.f[0]})
    finally:
        close_app(app)
    assert served.status_code == 200
    before = calls_made(database, baseline)

    client = baseline_app.app.test_client()
    bodies = [client.get(f"/{baseline.lower()}") for _ in range(3)]

    assert [b.status_code for b in bodies] == [200, 200, 200]
    # Each request took one unit through CONSUME_QUOTA (LAST_INSERT_ID hands the count back).
    assert [json.loads(b.data)["used"] for b in bodies] == [before + 1, before + 2, before + 3]
    assert calls_made(database, baseline) == before + 3
    assert all(json.loads(b.data)["admitted"] == 1 for b in bodies)
    # The page's object is byte for byte the one the service sends.
    object_bytes = bodies[0].data.split(b'"data":[', 1)[1][: -len(b"]}")]
    assert object_bytes == served.data.split(b'"data":[', 1)[1].split(b'],"next_cursor"', 1)[0]


@pytest.mark.parametrize("baseline", ["B4", "B5", "B6"])
def test_the_bare_admission_is_refused_once_its_key_is_spent(database, seeded, baseline):
    conn = root_connection(database)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE api_keys SET rate_limit = calls_made WHERE label = %s", (baseline,))
    finally:
        conn.close()
    spent = calls_made(database, baseline)

    body = json.loads(baseline_app.app.test_client().get(f"/{baseline.lower()}").data)

    assert body["admitted"] == 0  # the UPDATE's guard refused it: no unit taken
    assert calls_made(database, baseline) == spent
