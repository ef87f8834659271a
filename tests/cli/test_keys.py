"""`flask --app service keys create|list|revoke`: only hashes and prefixes are stored.

A new key is printed once, alone on stdout; it is `wk_` and 32 base62 characters (about 190 bits
from `secrets`), so two keys never collide and the 6-character prefix still tells them apart.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import string
from datetime import UTC, datetime, timedelta

import pytest

from assertions import DEF, assert_error
from service import keys
from testkit import invoke, key_hash

KEY_FORMAT = re.compile(r"wk_[A-Za-z0-9]{32}")


def create_key(app, *options: str) -> str:
    result = invoke(app, "keys", "create", *options)
    assert result.exit_code == 0, (result.output, repr(result.exception))
    # The key alone on stdout (one line), the human message on stderr.
    assert result.stdout.count("\n") == 1, result.stdout
    key = result.stdout.strip()
    assert key not in result.stderr
    return key


def utc_today():
    return datetime.now(UTC).date()


def test_keys_create_prints_the_key_alone_on_stdout(app, seeded):
    result = invoke(app, "keys", "create", "--user-id", "2", "--scopes", "export")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and KEY_FORMAT.fullmatch(lines[0])
    key = lines[0]
    assert "created key id" in result.stderr
    assert key[:6] + "..." in result.stderr  # the operator message shows the masked prefix only
    assert key not in result.stderr


def test_only_the_hash_and_prefix_are_stored(app, seeded):
    key = create_key(app, "--user-id", "2", "--scopes", "export,audit", "--label", "ops")
    assert key not in seeded.dump()
    row = seeded.one("SELECT key_hash, key_prefix, scopes FROM api_keys WHERE label = 'ops'")
    # A keyed hash: the plain SHA-256 of the key (all a stolen copy could test) is not stored.
    assert row["key_hash"] == key_hash(key)
    assert row["key_hash"] != hashlib.sha256(key.encode()).hexdigest()
    assert row["key_prefix"] == key[:6]
    assert set(row["scopes"].split(",")) == {"export", "audit"}


def test_new_keys_are_random_distinct_and_prefixed(app, seeded):
    first = create_key(app, "--user-id", "1")
    second = create_key(app, "--user-id", "1")
    assert first != second
    assert KEY_FORMAT.fullmatch(first) and KEY_FORMAT.fullmatch(second)
    prefixes = {r["key_prefix"] for r in seeded.all("SELECT key_prefix FROM api_keys")}
    assert {first[:6], second[:6]} <= prefixes


def test_key_generator_has_at_least_128_bits_from_a_csprng():
    generated = [keys.generate_key() for _ in range(2000)]
    assert all(KEY_FORMAT.fullmatch(k) for k in generated)
    assert len(set(generated)) == len(generated)
    alphabet = set(string.ascii_letters + string.digits)
    # Every base62 symbol turns up: the alphabet is not narrowed.
    assert set("".join(k[3:] for k in generated)) == alphabet
    assert len(set(k[:6] for k in generated)) > 1000  # the prefix tells keys apart
    assert 32 * math.log2(len(alphabet)) >= 128
    # Not the `random` module: seeding it does not make keys repeat.
    random.seed(1234)
    one = keys.generate_key()
    random.seed(1234)
    assert keys.generate_key() != one


def test_a_created_key_works_on_the_api(app, client, seeded):
    key = create_key(app, "--user-id", "2", "--scopes", "export", "--daily-limit", "7")
    response = client.get("/api/export?limit=2", headers={"X-API-Key": key})
    assert response.status_code == 200
    assert len(response.get_json()["data"]) == 2
    assert response.headers["X-RateLimit-Limit"] == "7"
    bearer = client.get("/api/export?limit=1", headers={"Authorization": f"Bearer {key}"})
    assert bearer.status_code == 200
    # Scopes are honoured: this key has no audit scope.
    assert_error(client.get("/api/audit", headers={"X-API-Key": key}), 403, "insufficient_scope")


def test_keys_list_shows_prefixes_never_keys(app, seeded):
    key = create_key(app, "--user-id", "1", "--scopes", "import")
    result = invoke(app, "keys", "list")
    assert result.exit_code == 0, result.output
    assert key not in result.output
    assert f"{key[:6]}..." in result.output
    assert "key_AB..." in result.output and "key_DE..." in result.output
    assert "key_ABC123" not in result.output and "key_DEF456" not in result.output
    assert key[6:] not in result.output  # not even the rest of it


def test_keys_revoke_disables_the_key(app, client, seeded):
    key = create_key(app, "--user-id", "2")
    key_id = seeded.value("SELECT id FROM api_keys WHERE key_prefix = %s", (key[:6],))
    assert client.get("/api/export?limit=1", headers={"X-API-Key": key}).status_code == 200
    result = invoke(app, "keys", "revoke", str(key_id))
    assert result.exit_code == 0, result.output
    assert_error(client.get("/api/export", headers={"X-API-Key": key}), 403, "key_disabled")
    row = seeded.one("SELECT is_valid, revoked_at FROM api_keys WHERE id = %s", (key_id,))
    assert row["is_valid"] == 0 and row["revoked_at"] is not None
    assert "revoked" in invoke(app, "keys", "list").output
    # Revoking twice, or an unknown id, is an error.
    assert invoke(app, "keys", "revoke", str(key_id)).exit_code != 0
    assert invoke(app, "keys", "revoke", "9999").exit_code != 0
    # Other keys are untouched.
    assert client.get("/api/export?limit=1", headers=DEF).status_code == 200


def test_key_expiring_in_the_past_is_refused(app, client, seeded):
    yesterday = (utc_today() - timedelta(days=1)).isoformat()
    key = create_key(app, "--user-id", "2", "--expires", yesterday)
    assert (
        seeded.value(
            "SELECT expires_at FROM api_keys WHERE key_prefix = %s", (key[:6],)
        ).isoformat()
        == yesterday
    )
    assert_error(client.get("/api/export", headers={"X-API-Key": key}), 401, "key_expired")


def test_key_expiring_today_still_works(app, client, seeded):
    key = create_key(app, "--user-id", "2", "--expires", utc_today().isoformat())
    assert client.get("/api/export?limit=1", headers={"X-API-Key": key}).status_code == 200


def count_keys(sql) -> int:
    return sql.value("SELECT COUNT(*) FROM api_keys")


@pytest.mark.parametrize(
    "options",
    [
        ["--user-id", "99"],  # no such user
        ["--user-id", "0"],
        ["--user-id", "2", "--scopes", "export,superuser"],
        ["--user-id", "2", "--scopes", ""],
        ["--user-id", "2", "--daily-limit", "-1"],
        ["--user-id", "2", "--expires", "31/12/2030"],
        [],  # --user-id is required
    ],
)
def test_keys_create_refuses_bad_input_and_creates_nothing(app, seeded, options):
    before = count_keys(seeded)
    result = invoke(app, "keys", "create", *options)
    assert result.exit_code != 0
    assert not KEY_FORMAT.search(result.output)  # no key printed
    assert count_keys(seeded) == before
