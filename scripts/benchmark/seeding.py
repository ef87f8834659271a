"""The benchmark's database: a user, the keys of each run, and generated articles."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pymysql

from service.keys import generate_key
from testkit import key_hash

HIGH_LIMIT = 100_000_000
SPENT_LIMIT = 5  # the R key: limit 5, 5 calls made today, so every request is refused


@dataclass
class Keys:
    f: list[str]
    r: str
    u: str
    bulk: str
    b3: str
    ids: dict[str, int] = field(default_factory=dict)  # label -> api_keys.id


def seed(conn: pymysql.Connection, f_keys: int) -> Keys:
    """A user, the keys of each run (plus rows for B1, B2 and B4) and 1,000 articles."""
    keys = Keys(
        f=[generate_key() for _ in range(f_keys)],
        r=generate_key(),
        u=generate_key(),
        bulk=generate_key(),
        b3=generate_key(),
    )
    rows = [(f"F{i + 1}", k, "export", HIGH_LIMIT, 0) for i, k in enumerate(keys.f)]
    rows += [
        ("R", keys.r, "export", SPENT_LIMIT, SPENT_LIMIT),
        ("U", keys.u, "export", HIGH_LIMIT, 0),
        ("BULK", keys.bulk, "export,import", HIGH_LIMIT, 0),
        ("B1", generate_key(), "export", HIGH_LIMIT, 0),
        ("B2", generate_key(), "export", HIGH_LIMIT, 0),
        ("B3", keys.b3, "export", HIGH_LIMIT, 0),
        ("B4", generate_key(), "export", HIGH_LIMIT, 0),
    ]
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (id, username, email, is_active) "
            "VALUES (1, 'bench', 'bench@example.org', 1)"
        )
        for label, key, scopes, limit, used in rows:
            cur.execute(
                "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, label, rate_limit, "
                "calls_made, last_reset, is_valid, created_at) VALUES (1, %s, "
                "LEFT(%s, 6), %s, %s, %s, %s, UTC_DATE(), 1, UTC_TIMESTAMP())",
                (key_hash(key), key, scopes, label, limit, used),
            )
            keys.ids[label] = cur.lastrowid
    generate_articles(conn, 1000, first=1)
    return keys


def generate_articles(conn: pymysql.Connection, count: int, *, first: int) -> float:
    """`count` articles numbered from `first`, ~300-byte summaries; INSERT ... SELECT from the
    Sequence engine in chunks. Returns the seconds it took."""
    started = time.monotonic()
    chunk = 200_000
    with conn.cursor() as cur:
        for start in range(first, first + count, chunk):
            end = min(start + chunk, first + count) - 1
            cur.execute(
                "INSERT INTO articles (title, url, language, summary, updated_at) "
                "SELECT CONCAT('Article ', seq), "
                "CONCAT('https://en.wikipedia.org/wiki/Bench_article_', seq), "
                "ELT(1 + seq MOD 4, 'en', 'de', 'fr', 'zh-hans'), "
                "RPAD(CONCAT('Article ', seq, ' is a benchmark article. '), 300, "
                "'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. '), "
                "'2024-01-01' + INTERVAL seq SECOND "
                f"FROM seq_{start}_to_{end}"
            )
    return time.monotonic() - started
