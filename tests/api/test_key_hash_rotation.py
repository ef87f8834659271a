"""KEY_HASH_SECRET rotation: keys stored under the previous secret keep working and are rehashed
under the new one on first use; once the previous secret is removed, only rehashed keys work."""

from __future__ import annotations

from testkit import key_hash

OLD = "old-secret-" + "o" * 32
NEW = "new-secret-" + "n" * 32
KEY = "wk_rotationTestKey0123456789abcdefgh"


def add_key(sql) -> int:
    sql.run("INSERT IGNORE INTO users (id, username, email) VALUES (1, 'u', 'u@example.com')")
    sql.run(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, scopes, rate_limit) "
        "VALUES (1, %s, LEFT(%s, 6), 'export', 100)",
        (key_hash(KEY, OLD), KEY),
    )
    return sql.value("SELECT LAST_INSERT_ID()")


def test_a_key_under_the_previous_secret_works_and_is_rehashed(app_factory, sql):
    key_id = add_key(sql)
    app = app_factory(KEY_HASH_SECRET=NEW, KEY_HASH_SECRET_PREVIOUS=OLD)
    client = app.test_client()
    assert client.get("/api/export", headers={"X-API-Key": KEY}).status_code == 200
    stored = sql.value("SELECT key_hash FROM api_keys WHERE id = %s", (key_id,))
    assert stored == key_hash(KEY, NEW)
    # Rotation finished: the previous secret is gone, the rehashed key still works.
    after = app_factory(KEY_HASH_SECRET=NEW).test_client()
    assert after.get("/api/export", headers={"X-API-Key": KEY}).status_code == 200


def test_without_the_previous_secret_a_key_not_yet_rehashed_is_unknown(app_factory, sql):
    add_key(sql)
    client = app_factory(KEY_HASH_SECRET=NEW).test_client()
    response = client.get("/api/export", headers={"X-API-Key": KEY})
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "invalid_key")
