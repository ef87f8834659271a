"""The export's lines and objects are formed by the database: byte for byte what json.dumps makes
of the schema's dump of the same rows (schemas.ArticleOut): the NDJSON lines
(articles.ndjson_batches) with json.dumps' default separators and a newline, the JSON page's objects
(articles.json_page) with the body's compact ones; on hostile, generated and dated rows."""

import json
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.repositories import articles
from service.schemas import ArticleOut

# What a utf8mb4 column can hold: any code point but the surrogates (which no UTF-8 text has).
STORABLE = st.characters(exclude_categories=("Cs",))
HOSTILE = [
    'quote " backslash \\ slash /',
    "controls \n \r \t \b \f \x00 \x01 \x0b \x0e \x0f \x1a \x1b \x1f \x7f",
    "looks escaped: \\u000B \\\\u001F \\n \\\\",
    "unicode é ß 中文 😀 \U0010ffff \u2028 \u2029 \ufeff \ufffe",
    "</script><!-- &amp; %s %(x)s {}",
]

_INSERT = (
    "INSERT INTO articles (title, url, language, summary, updated_at) VALUES (%s, %s, %s, %s, %s)"
)


def _insert(sql, texts, moment=datetime(2024, 1, 2, 3, 4, 5)):
    for i, text in enumerate(texts):
        sql.run(
            _INSERT,
            (f"t{text}"[:300], f"https://x.org/{i}/{text}"[:700], "en", text or "s", moment),
        )


ALL = {"before_id": None, "since": None, "limit": 100}
# json.dumps' options for each form: the NDJSON line's defaults, the JSON body's compact ones.
_NDJSON = {"ensure_ascii": False}
_COMPACT = {"ensure_ascii": False, "separators": (",", ":")}


def ndjson_read(cur, page: dict, batch: int = 2) -> tuple[int, int | None, bytes]:
    """A whole query of the streamed export, as the service reads it (a few rows at a time):
    (rows, the last row's id, the lines)."""
    count, last_id, lines = 0, None, b""
    for rows, batch_last_id, batch_lines in articles.ndjson_batches(cur, **page, batch=batch):
        count, last_id, lines = count + rows, batch_last_id, lines + batch_lines
    return count, last_id, lines


def assert_formed_as_python_does(cur, page: dict) -> tuple[int, bytes]:
    """The page's NDJSON lines and JSON objects, formed by the database, are byte for byte
    json.dumps of the schema's dump of its rows; returns (rows, NDJSON bytes)."""
    rows = articles.page(cur, **page)
    dump = ArticleOut().dump
    count, last_id, lines = ndjson_read(cur, page)
    assert (count, last_id) == (len(rows), rows[-1]["id"] if rows else None)
    assert lines == "".join(json.dumps(dump(r), **_NDJSON) + "\n" for r in rows).encode()
    objects = articles.json_page(cur, **page)
    assert objects == [json.dumps(dump(r), **_COMPACT).encode() for r in rows]
    assert [articles.object_id(o) for o in objects] == [r["id"] for r in rows]
    return count, lines


def test_hostile_strings_are_encoded_as_python_does(sql):
    _insert(sql, HOSTILE)
    with sql.conn.cursor() as cur:
        count, lines = assert_formed_as_python_does(cur, ALL)
    assert count == len(HOSTILE)
    assert (
        b"\\u000b" in lines and b"\\u000B" in lines
    )  # a control char, and text that looks like one


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(STORABLE, min_size=1, max_size=40), min_size=1, max_size=5))
def test_any_storable_text_is_encoded_as_python_does(sql, texts):
    sql.run("DELETE FROM articles")
    _insert(sql, texts)
    with sql.conn.cursor() as cur:
        count, _ = assert_formed_as_python_does(cur, ALL)
    assert count == len(texts)


def test_keyset_pages_and_filters_match_the_row_query(sql):
    _insert(sql, [f"a{i}" for i in range(7)], datetime(2024, 1, 1))
    _insert(sql, [f"b{i}" for i in range(5)], datetime(2025, 6, 1, 23, 59, 59))
    with sql.conn.cursor() as cur:
        top = articles.page(cur, **ALL)
        for page in (
            {"before_id": None, "since": None, "limit": 3},
            {"before_id": top[4]["id"], "since": None, "limit": 4},
            {"before_id": None, "since": datetime(2025, 1, 1), "limit": 100},
            {"before_id": top[0]["id"], "since": datetime(2025, 1, 1), "limit": 2},
        ):
            assert_formed_as_python_does(cur, page)
        assert ndjson_read(cur, {"before_id": 1, "since": None, "limit": 5}) == (0, None, b"")
        assert articles.json_page(cur, before_id=1, since=None, limit=5) == []
