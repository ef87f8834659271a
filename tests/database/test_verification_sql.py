"""sql/verification.sql runs without error on a fresh sample database and says what it should."""

from __future__ import annotations

import subprocess

from testkit import ROOT, flush_audit, mysql_client


def run_file(database: str) -> str:
    argv, env = mysql_client(database, "--batch")
    with open(ROOT / "sql" / "verification.sql", "rb") as sql_file:
        done = subprocess.run(
            argv, stdin=sql_file, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_verification_queries_run_and_find_nothing_wrong(client, seeded):
    client.get("/api/export", headers={"X-API-Key": "key_DEF456"})
    client.get("/api/export", headers={"X-API-Key": "not-a-key"})
    out = run_file(seeded.database)
    lines = out.splitlines()
    # Query 2: no malformed hash, no long prefix, two keys.
    assert lines[lines.index("bad_hashes\tlong_prefixes\tkeys_total") + 1] == "0\t0\t2"
    assert "audit_rows_with_sample_keys\tkey_rows_with_plain_keys\n0\t0" in out
    assert "masked_audit_logs\tDEFINER\tNONE" in out
    assert "api_key\t" not in out.split("bad_hashes")[0], "no plain-text key column"
    assert "key_ABC123" not in out and "key_DEF456" not in out


def expectations() -> list[tuple[dict[str, str], str]]:
    """Each `Expect: col = value, ...` line of the file with the statement that follows it."""
    pairs, expect, current = [], None, []
    for line in (ROOT / "sql" / "verification.sql").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            text = stripped.lstrip("- ").strip()
            if text.startswith("Expect:"):
                expect = dict(
                    part.strip().split(" = ") for part in text.removeprefix("Expect:").split(", ")
                )
            continue
        if stripped:
            current.append(line)
        if stripped.endswith(";"):
            statement = "\n".join(current).rstrip(";")
            if expect is not None:
                pairs.append((expect, statement))
            expect, current = None, []
    return pairs


def test_every_promise_in_the_comments_is_an_expect_line_the_output_keeps(client, seeded):
    text = (ROOT / "sql" / "verification.sql").read_text()
    promises = [line for line in text.splitlines() if "Expect" in line and "Expect:" not in line]
    assert promises in (
        [],
        [
            '-- Each query says what it proves; an "Expect:" line names '
            "columns of the query below it and the"
        ],
    ), promises
    # Outcomes the file talks about: a 200, a 401 and a 429 recorded.
    client.get("/api/export", headers={"X-API-Key": "key_DEF456"})
    client.get("/api/export", headers={"X-API-Key": "not-a-key"})
    for _ in range(6):
        client.get("/api/export", headers={"X-API-Key": "key_ABC123"})
    flush_audit(client.application)
    pairs = expectations()
    assert len(pairs) == 7
    for expect, statement in pairs:
        rows = seeded.all(statement)
        assert rows, statement
        for row in rows:
            got = {column: str(row[column]) for column in expect}
            assert got == expect, statement
