"""The NDJSON stream's dates are formatted in SQL (articles.page(dates_as_text=True)); they read
exactly as the Python encoder writes them (tests/rules/test_encoders.py)."""

from service.clock import rfc3339
from service.repositories import articles


def test_sql_date_format_matches_the_rfc3339_formatter(sql):
    # PAGE_FOR_STREAM formats DATETIME (whole seconds) in SQL; it must read like UtcDateTime.
    sql.run(
        "INSERT INTO articles (title, url, language, summary, updated_at) VALUES "
        "('a', 'https://x.org/a', 'en', 's', '2024-01-02 03:04:05'), "
        "('b', 'https://x.org/b', 'en', 's', '0999-12-31 23:59:59')"
    )
    with sql.conn.cursor() as cur:
        as_text = articles.page(cur, before_id=None, since=None, limit=10, dates_as_text=True)
        as_dates = articles.page(cur, before_id=None, since=None, limit=10)
    assert [r["updated_at"] for r in as_text] == [rfc3339(r["updated_at"]) for r in as_dates]
    assert [r["updated_at"] for r in as_text] == ["0999-12-31T23:59:59Z", "2024-01-02T03:04:05Z"]
    assert {k: v for k, v in as_text[0].items() if k != "updated_at"} == {
        k: v for k, v in as_dates[0].items() if k != "updated_at"
    }
