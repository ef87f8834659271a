"""The export's dates are formatted in SQL (DATE_FORMAT in articles.NDJSON_LINES and
articles.JSON_OBJECTS); they read exactly as the one RFC 3339 formatter writes them, at the edges
of the DATETIME range too."""

import json

from service.clock import rfc3339
from service.repositories import articles


def test_sql_date_format_matches_the_rfc3339_formatter(sql):
    sql.run(
        "INSERT INTO articles (title, url, language, summary, updated_at) VALUES "
        "('a', 'https://x.org/a', 'en', 's', '2024-01-02 03:04:05'), "
        "('b', 'https://x.org/b', 'en', 's', '0999-12-31 23:59:59'), "
        "('c', 'https://x.org/c', 'en', 's', '9999-12-31 23:59:59'), "
        "('d', 'https://x.org/d', 'en', 's', '1000-01-01 00:00:00')"
    )
    page = {"before_id": None, "since": None, "limit": 10}
    with sql.conn.cursor() as cur:
        rows = articles.page(cur, **page)
        lines = b"".join(b for _, _, b in articles.ndjson_batches(cur, **page, batch=3))
        objects = articles.json_page(cur, **page)
    expected = [rfc3339(row["updated_at"]) for row in rows]
    assert [json.loads(line)["updated_at"] for line in lines.splitlines()] == expected
    assert [json.loads(o)["updated_at"] for o in objects] == expected
    assert expected == [
        "1000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0999-12-31T23:59:59Z",
        "2024-01-02T03:04:05Z",
    ]
