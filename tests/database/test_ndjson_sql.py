"""The export's lines and objects are formed by the database: byte for byte what json.dumps makes
of the schema's dump of the same rows (schemas.ArticleOut): the NDJSON lines
(articles.ndjson_page) with json.dumps' default separators and a newline, the JSON page's objects
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


def _python_lines(cur, **page) -> bytes:
    rows = articles.page(cur, **page)
    dump = ArticleOut().dump
    return "".join(json.dumps(dump(row), ensure_ascii=False) + "\n" for row in rows).encode()


def _sql_lines(cur, **page) -> tuple[int, bytes]:
    count, _, lines = articles.ndjson_page(cur, **page)
    return count, lines


def test_hostile_strings_are_encoded_as_python_does(sql):
    _insert(sql, HOSTILE)
    with sql.conn.cursor() as cur:
        expected = _python_lines(cur, before_id=None, since=None, limit=100)
        count, lines = _sql_lines(cur, before_id=None, since=None, limit=100)
    assert count == len(HOSTILE)
    assert lines == expected
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
        expected = _python_lines(cur, before_id=None, since=None, limit=100)
        count, lines = _sql_lines(cur, before_id=None, since=None, limit=100)
    assert (count, lines) == (len(texts), expected)


def test_keyset_pages_and_filters_match_the_row_query(sql):
    _insert(sql, [f"a{i}" for i in range(7)], datetime(2024, 1, 1))
    _insert(sql, [f"b{i}" for i in range(5)], datetime(2025, 6, 1, 23, 59, 59))
    with sql.conn.cursor() as cur:
        top = articles.page(cur, before_id=None, since=None, limit=100)
        for page in (
            {"before_id": None, "since": None, "limit": 3},
            {"before_id": top[4]["id"], "since": None, "limit": 4},
            {"before_id": None, "since": datetime(2025, 1, 1), "limit": 100},
            {"before_id": top[0]["id"], "since": datetime(2025, 1, 1), "limit": 2},
        ):
            rows = articles.page(cur, **page)
            count, last_id, lines = articles.ndjson_page(cur, **page)
            assert (count, last_id) == (len(rows), rows[-1]["id"])
            assert lines == _python_lines(cur, **page)
        assert articles.ndjson_page(cur, before_id=1, since=None, limit=5) == (0, None, b"")


def _python_objects(cur, **page) -> list[bytes]:
    """What the JSON export made of the rows before the database formed them."""
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    dump = ArticleOut().dump
    return [json.dumps(dump(row), **compact).encode() for row in articles.page(cur, **page)]


def test_hostile_strings_make_the_json_objects_python_makes(sql):
    _insert(sql, HOSTILE)
    with sql.conn.cursor() as cur:
        page = {"before_id": None, "since": None, "limit": 100}
        objects = articles.json_page(cur, **page)
        assert objects == _python_objects(cur, **page)
    assert len(objects) == len(HOSTILE)
    assert [articles.object_id(o) for o in objects] == [json.loads(o)["id"] for o in objects]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(STORABLE, min_size=1, max_size=40), min_size=1, max_size=5))
def test_any_storable_text_makes_the_json_objects_python_makes(sql, texts):
    sql.run("DELETE FROM articles")
    _insert(sql, texts)
    with sql.conn.cursor() as cur:
        page = {"before_id": None, "since": None, "limit": 100}
        assert articles.json_page(cur, **page) == _python_objects(cur, **page)


def test_json_keyset_pages_and_filters_match_the_row_query(sql):
    _insert(sql, [f"a{i}" for i in range(7)], datetime(2024, 1, 1))
    _insert(sql, [f"b{i}" for i in range(5)], datetime(2025, 6, 1, 23, 59, 59))
    with sql.conn.cursor() as cur:
        top = articles.page(cur, before_id=None, since=None, limit=100)
        for page in (
            {"before_id": None, "since": None, "limit": 3},
            {"before_id": top[4]["id"], "since": None, "limit": 4},
            {"before_id": None, "since": datetime(2025, 1, 1), "limit": 100},
            {"before_id": top[0]["id"], "since": datetime(2025, 1, 1), "limit": 2},
        ):
            assert articles.json_page(cur, **page) == _python_objects(cur, **page)
        assert articles.json_page(cur, before_id=1, since=None, limit=5) == []
