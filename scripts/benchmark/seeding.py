"""The benchmark's database: a user, the keys of each run, and generated articles."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pymysql

from service.keys import generate_key
from service.repositories.api_keys import CONSUME_QUOTA
from service.repositories.articles import JSON_OBJECTS
from testkit import key_hash

HIGH_LIMIT = 100_000_000
SPENT_LIMIT = 5  # the R key: limit 5, 5 calls made today, so every request is refused

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def bound(sql: str, to: Callable[[str], str]) -> str:
    """The service's statement for the server's own binding: each `%(name)s` replaced by
    `to(name)`, and `%%` (PyMySQL's escaped percent) back to `%`."""
    return _PLACEHOLDER.sub(lambda match: to(match.group(1)), sql).replace("%%", "%")


# Not the service's: the admission and the page in one CALL, for the B5 baseline and
# scripts/benchmark/statements.py, to measure what one round trip instead of two would save. The
# quota UPDATE, then (only if it admitted) the count and the page as two result sets; its
# statements are the service's, each placeholder a parameter `p_<name>`.
_PROCEDURE_PARAMETERS = {
    "key_id": "INT",
    "today": "DATE",
    "scope": "VARCHAR(16)",
    "before_id": "BIGINT",
    "since": "DATETIME",
    "limit": "INT",
}


def _procedure_parameter(name: str) -> str:
    if name not in _PROCEDURE_PARAMETERS:
        raise KeyError(f"the service's SQL has a placeholder {name!r} the procedure does not take")
    return "p_" + name


PROCEDURE = (
    "CREATE PROCEDURE admit_and_page("
    + ", ".join(f"p_{name} {kind}" for name, kind in _PROCEDURE_PARAMETERS.items())
    + ")\nBEGIN\n"
    + bound(CONSUME_QUOTA, _procedure_parameter)
    + ";\nIF ROW_COUNT() = 1 THEN\n  SELECT LAST_INSERT_ID() AS used;\n"
    + bound(JSON_OBJECTS, _procedure_parameter)
    + ";\nEND IF;\nEND"
)
PROCEDURE_CALL = (
    "CALL admit_and_page(" + ", ".join(f"%({name})s" for name in _PROCEDURE_PARAMETERS) + ")"
)


# Not the service's either: B4's two statements prepared once per connection, for the B6 baseline
# and scripts/benchmark/statements.py, to measure what the server's parsing of each statement
# costs. Text protocol only (PyMySQL has no binary one): `PREPARE` once, then `EXECUTE ... USING`
# with the values, which MariaDB takes as literals; MySQL 8 takes only user variables there, which
# would need a `SET` first: a MariaDB-only form.
class Prepared:
    """One of the service's statements as a prepared statement named `name`."""

    def __init__(self, name: str, sql: str) -> None:
        self.names = _PLACEHOLDER.findall(sql)  # in order, one `?` each
        self.prepare = f"PREPARE {name} FROM %s"
        self.text = bound(sql, lambda _: "?")
        self.execute = f"EXECUTE {name} USING " + ", ".join("%s" for _ in self.names)

    def args(self, params: dict) -> tuple:
        return tuple(params[name] for name in self.names)


PREPARED_ADMIT = Prepared("bench_admit", CONSUME_QUOTA)
PREPARED_PAGE = Prepared("bench_page", JSON_OBJECTS)


def prepare(cur) -> None:
    """Prepare B6's statements on `cur`'s connection (they last as long as it does)."""
    for statement in (PREPARED_ADMIT, PREPARED_PAGE):
        cur.execute(statement.prepare, (statement.text,))


@dataclass
class Keys:
    f: list[str]
    r: str
    u: str
    bulk: str
    b3: str
    ids: dict[str, int] = field(default_factory=dict)  # label -> api_keys.id


def seed(conn: pymysql.Connection, f_keys: int) -> Keys:
    """A user, the keys of each run (plus rows for B1, B2 and B4-B6), B5's procedure and 1,000
    articles."""
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
        ("B5", generate_key(), "export", HIGH_LIMIT, 0),
        ("B6", generate_key(), "export", HIGH_LIMIT, 0),
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
        cur.execute(PROCEDURE)
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
