"""Property tests (hypothesis): whatever the bytes of an import body or of any query parameter of
any route, the answer is never a 500, and a refused import writes nothing.

One database per module (each example would otherwise cost a migration); the import key's
quota is lifted so that the quota never decides an example. Bounded: a fixed number of examples
per property, no deadline (the machine is shared).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit import Sql, fresh_database, make_app

ABC = {"X-API-Key": "key_ABC123"}  # export, import
DEF = {"X-API-Key": "key_DEF456"}  # export, audit
SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ROUTES = {
    "/api/export": ["limit", "cursor", "since", "format"],
    "/api/audit": ["limit", "cursor", "since", "endpoint", "status"],
    "/api/usage": [],
}


@pytest.fixture(scope="module")
def world():
    with fresh_database(sample=True) as name:
        sql = Sql(name)
        sql.run(
            "UPDATE api_keys SET rate_limit = 1000000000, scopes = 'export,import,audit' "
            "WHERE id IN (1, 2)"
        )
        app = make_app(name)
        try:
            yield app.test_client(), sql
        finally:
            app.extensions["audit"].close(timeout=2)
            app.extensions["db"].discard()
            sql.close()


def snapshot(sql: Sql) -> tuple:
    return (
        sql.value("SELECT COUNT(*) FROM articles"),
        sql.value(
            "SELECT COALESCE(SUM(CRC32(CONCAT_WS('|', title, url, language, summary, "
            "updated_at))), 0) FROM articles"
        ),
    )


# JSON strings as a hostile client writes them: any text, plus escapes Python's json.dumps never
# produces (lone surrogates), control characters and very long runs.
hostile_fragments = st.sampled_from(
    ["\\ud800", "\\udfff", "\\u0000", "\\\\", '\\"', "\U0001f600", "é", "\n", "wk_", "key_"]
)
json_string = st.lists(
    st.one_of(st.text(max_size=20).map(lambda t: json.dumps(t)[1:-1]), hostile_fragments),
    max_size=8,
).map(lambda parts: '"' + "".join(parts) + '"')
scalar = st.one_of(
    json_string,
    st.sampled_from(["null", "true", "false", "0", "-1", "1e400", "123456789012345678901234"]),
    st.floats(allow_nan=False).map(json.dumps),
)
good_values = {
    "title": st.just('"T"'),
    "url": st.builds(lambda n: f'"https://en.wikipedia.org/wiki/P_{n}"', st.integers(0, 50)),
    "language": st.sampled_from(['"en"', '"zh-hans"', '"abc-abcdefgh-abcdefgh"', '"EN"']),
    "summary": st.just('"S"'),
    "updated_at": st.sampled_from(
        ['"2026-03-01T12:00:00Z"', '"2026-03-01"', '"9999-12-31T23:59:59-01:00"']
    ),
}
field_name = st.one_of(st.sampled_from(sorted(good_values)), json_string)


@st.composite
def record_text(draw) -> str:
    fields = {}
    for name in draw(st.lists(field_name, max_size=7)):
        fields[name] = draw(st.one_of(good_values.get(name.strip('"'), scalar), scalar))
    for name, strategy in good_values.items():
        if draw(st.booleans()):
            fields.setdefault(f'"{name}"', draw(strategy))
    members = ", ".join(
        f"{name if name.startswith(chr(34)) else json.dumps(name)}: {value}"
        for name, value in fields.items()
    )
    return "{" + members + "}"


records = st.lists(st.one_of(record_text(), scalar, st.just("[]")), max_size=6)


def check_import(client, sql, body: bytes, content_type: str) -> None:
    before = snapshot(sql)
    response = client.post("/api/import", data=body, content_type=content_type, headers=ABC)
    assert response.status_code in (200, 400, 413, 415), (response.status_code, body[:200])
    assert response.status_code != 500
    if response.status_code != 200:
        assert snapshot(sql) == before, "a refused import wrote something"


@SETTINGS
@given(items=records)
def test_json_import_never_500_never_partial(world, items):
    client, sql = world
    check_import(
        client,
        sql,
        ("[" + ", ".join(items) + "]").encode("utf-8", "surrogatepass"),
        "application/json",
    )


@SETTINGS
@given(items=records, separator=st.sampled_from(["\n", "\r\n", "\n\n"]))
def test_ndjson_import_never_500_never_partial(world, items, separator):
    client, sql = world
    body = separator.join(items).encode("utf-8", "surrogatepass")
    check_import(client, sql, body, "application/x-ndjson")


@SETTINGS
@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-ndjson",
            "text/plain",
            "application/json; charset=latin1",
        ]
    ),
)
def test_import_of_arbitrary_bytes_never_500(world, body, content_type):
    client, sql = world
    check_import(client, sql, body, content_type)


raw_value = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1001",
            "99999999999999999999",
            "ndjson",
            "json",
            "2026-11-26T00:00:00Z",
            "2026-W48-3",
            "aWQ6NQ",
            "aWQ6MA",
            "aWQ6LTE",
            "%",
            "%ZZ",
            "\x00",
            "wk_" + "a" * 32,
            "200",
            "١٠",
        ]
    ),
)


@SETTINGS
@given(
    route=st.sampled_from(sorted(ROUTES)),
    pairs=st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(["limit", "cursor", "since", "format", "endpoint", "status"]),
                st.text(max_size=10),
            ),
            raw_value,
        ),
        max_size=4,
    ),
)
def test_every_query_parameter_of_every_route_never_500(world, route, pairs):
    client, _sql = world

    def encoded(text: str) -> str:
        return quote(text, safe="", errors="surrogatepass")

    query = "&".join(f"{encoded(name)}={encoded(value)}" for name, value in pairs)
    for headers in (DEF, ABC):
        response = client.get(f"{route}?{query}", headers=headers)
        assert response.status_code in (200, 400, 403), (response.status_code, query)
        if response.status_code == 400:
            assert response.get_json()["error"]["code"] == "validation_error"
