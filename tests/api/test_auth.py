"""Authentication: keys from `X-API-Key` or `Authorization: Bearer`, looked up by their hash.

401 for a missing, unknown or expired key; 403 for a disabled key, an inactive user or a missing
scope. A presented value that matches no key is never stored, logged or echoed.
"""

from __future__ import annotations

import base64

import pytest

from assertions import ABC, DEF, assert_error
from testkit import flush_audit, key_hash

EXPORT = "/api/export?limit=1"


def test_valid_key_in_x_api_key(reader):
    response = reader.get(EXPORT, headers=DEF)
    assert response.status_code == 200
    assert response.get_json()["status"] == "success"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_valid_key_as_bearer_token(reader, scheme):
    response = reader.get(EXPORT, headers={"Authorization": f"{scheme} key_DEF456"})
    assert response.status_code == 200


def test_missing_key_is_401_missing_key(reader):
    error = assert_error(reader.get(EXPORT), 401, "missing_key")
    assert "X-API-Key" in error["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": ""},
        {"X-API-Key": "   "},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer"},
    ],
)
def test_empty_key_is_401_missing_key(reader, headers):
    assert_error(reader.get(EXPORT, headers=headers), 401, "missing_key")


def test_basic_auth_is_refused(reader):
    for credentials in ("key_DEF456:", "user:key_DEF456", "key_DEF456"):
        token = base64.b64encode(credentials.encode()).decode()
        response = reader.get(EXPORT, headers={"Authorization": f"Basic {token}"})
        assert response.status_code == 401
    raw = reader.get(EXPORT, headers={"Authorization": "Basic key_DEF456"})
    assert raw.status_code == 401


def test_unknown_key_is_401_invalid_key_and_not_echoed(reader):
    response = reader.get(EXPORT, headers={"X-API-Key": "key_XYZ789"})
    assert_error(response, 401, "invalid_key")
    assert "key_XYZ789" not in response.get_data(as_text=True)
    assert "key_XY" not in response.get_data(as_text=True)


def test_lookup_is_by_hash(client, seeded):
    # Same prefix, different key: only the full hash identifies a key.
    assert_error(client.get(EXPORT, headers={"X-API-Key": "key_DEF457"}), 401, "invalid_key")
    assert_error(client.get(EXPORT, headers={"X-API-Key": "key_DE"}), 401, "invalid_key")
    # Whatever hashes to the stored key_hash is the key, and nothing else is.
    seeded.run("UPDATE api_keys SET key_hash = %s WHERE id = 2", (key_hash("rotated_key_1"),))
    assert_error(client.get(EXPORT, headers=DEF), 401, "invalid_key")
    assert client.get(EXPORT, headers={"X-API-Key": "rotated_key_1"}).status_code == 200


def test_key_lacking_the_route_scope_is_403_insufficient_scope(reader):
    assert_error(reader.get("/api/audit", headers=ABC), 403, "insufficient_scope")
    response = reader.post("/api/import", json=[], headers=DEF)
    assert_error(response, 403, "insufficient_scope")


def test_key_of_an_inactive_user_is_403(client, seeded):
    seeded.run("UPDATE users SET is_active = 0 WHERE id = 2")
    assert_error(client.get(EXPORT, headers=DEF), 403, "key_disabled")
    # The other user's key is unaffected.
    assert client.get(EXPORT, headers=ABC).status_code == 200


def test_key_marked_invalid_is_403(client, seeded):
    seeded.run("UPDATE api_keys SET is_valid = 0 WHERE id = 2")
    assert_error(client.get(EXPORT, headers=DEF), 403, "key_disabled")


def test_oversized_key_header_is_401(reader):
    big = "key_DEF456" + "x" * 10_240
    response = reader.get(EXPORT, headers={"X-API-Key": big})
    assert_error(response, 401, "invalid_key")
    assert "xxxxxxxx" not in response.get_data(as_text=True)
    bearer = reader.get(EXPORT, headers={"Authorization": "Bearer " + "k" * 10_240})
    assert_error(bearer, 401, "invalid_key")


def test_sql_looking_key_is_401_and_changes_nothing(reader, shared):
    sql = shared[1]
    before = sql.all("SELECT * FROM api_keys ORDER BY id")
    for value in ("' OR '1'='1", "key_DEF456' OR '1'='1", "x'; DROP TABLE api_keys; --"):
        assert_error(reader.get(EXPORT, headers={"X-API-Key": value}), 401, "invalid_key")
    assert sql.all("SELECT * FROM api_keys ORDER BY id") == before


@pytest.mark.parametrize(
    "value", ["clé_ABC123", "ключ_DEF456", "key_DEF456\u00a0", "key_DEF\u2024456"]
)
def test_non_ascii_key_is_401(reader, value):
    # key_DEF456 followed by a no-break space is not key_DEF456: only ASCII whitespace around the
    # header value is insignificant (RFC 9110, 5.5).
    assert_error(reader.get(EXPORT, headers={"X-API-Key": value}), 401, "invalid_key")


def test_unmatched_key_leaves_no_trace_in_the_audit_trail(app, client, seeded):
    secret = "hunter2-my-password"
    assert client.get(EXPORT, headers={"X-API-Key": secret}).status_code == 401
    flush_audit(app)
    row = seeded.one(
        "SELECT key_id, key_prefix, response_code, error_code FROM audit_logs "
        "ORDER BY id DESC LIMIT 1"
    )
    assert row == {
        "key_id": None,
        "key_prefix": None,
        "response_code": 401,
        "error_code": "invalid_key",
    }
    assert "hunter" not in seeded.dump()


def test_refused_requests_do_not_consume_quota(client, seeded):
    client.get("/api/audit", headers=ABC)  # 403: wrong scope
    assert seeded.value("SELECT calls_made FROM api_keys WHERE id = 1") == 0
