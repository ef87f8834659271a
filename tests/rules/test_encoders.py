"""The export's hand-written serializers (service/schemas.py, docs/performance.md) produce exactly
what the marshmallow schema and json.dumps produced before them, byte for byte."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.clock import rfc3339
from service.schemas import ArticleOut, AuditRowOut, article_ndjson_line, dump_article

TRICKY = [
    "plain",
    'quote " backslash \\ slash /',
    "controls \n \r \t \b \f \x00 \x01 \x1f \x7f",
    "unicode é ß 中文 😀 \u2028 \u2029 \ufeff",
    "</script><!-- &amp;",
    "",
]


def rows():
    moments = [
        datetime(2024, 1, 2, 3, 4, 5),
        datetime(2024, 1, 2, 3, 4, 5, 123456),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59),
        datetime(2024, 6, 1, 12, tzinfo=timezone(timedelta(hours=2))),
    ]
    for i, (text, moment) in enumerate(zip(TRICKY * 2, moments * 3, strict=False), start=1):
        yield {
            "id": i * 1_000_003,
            "title": f"Title {text}",
            "url": f"https://en.wikipedia.org/wiki/{text}",
            "language": "zh-hans",
            "summary": text * 3,
            "updated_at": moment,
        }


@pytest.mark.parametrize("row", list(rows()), ids=lambda r: str(r["id"]))
def test_dump_article_is_the_schema_dump(row):
    assert dump_article(row) == ArticleOut().dump(row)
    assert list(dump_article(row)) == list(ArticleOut().dump(row))  # same key order


@pytest.mark.parametrize("row", list(rows()), ids=lambda r: str(r["id"]))
def test_ndjson_line_is_json_dumps_of_the_schema_dump(row):
    expected = json.dumps(ArticleOut().dump(row), ensure_ascii=False) + "\n"
    assert article_ndjson_line(row) == expected


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
