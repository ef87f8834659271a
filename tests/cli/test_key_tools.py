"""Support's key tools: keys show | update | rotate | reset-usage, plus weak keys in keys list.

Each shows a key only at creation (rotate: the new key alone on stdout), logs who did what as
one structured line, and answers bad input with one line that never echoes the value.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from assertions import ABC, DEF
from service.quota import utc_now
from testkit import invoke, key_hash

KEY_FORMAT = re.compile(r"wk_[A-Za-z0-9]{32}")


@pytest.fixture
def events(caplog):
    caplog.set_level(logging.INFO, logger="service.keys")

    def found(name: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "event", None) == name]

    return found


def one_line_error(result, *, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_show_prints_everything_but_the_key_and_logs_the_actor(app, seeded, events):
    result = invoke(app, "keys", "show", "2", "--actor", "support-ann")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "key:         key_DE..." in out
    assert "owner:       user 2 (api_consumer)" in out
    assert "scopes:      export,audit" in out
    assert "daily limit: 10000" in out
    assert "weak:        yes" in out
    assert "key_DEF456" not in out + result.stderr
    (line,) = events("keys.show")
    assert (line.actor, line.key_id, line.key_prefix) == ("support-ann", 2, "key_DE")


def test_update_changes_limit_scopes_expiry_and_label_and_logs_before_and_after(
    app, seeded, events
):
    result = invoke(
        app,
        "keys",
        "update",
        "1",
        "--daily-limit",
        "50",
        "--scopes",
        "export,audit",
        "--expires",
        "2031-01-31",
        "--label",
        "bigger plan",
    )
    assert result.exit_code == 0, result.output
    row = seeded.one("SELECT rate_limit, scopes, expires_at, label FROM api_keys WHERE id = 1")
    assert row["rate_limit"] == 50 and set(row["scopes"].split(",")) == {"export", "audit"}
    assert row["expires_at"].isoformat() == "2031-01-31" and row["label"] == "bigger plan"
    (line,) = events("keys.update")
    assert line.before["rate_limit"] == 5 and line.after["rate_limit"] == 50
    assert line.after["scopes"] == "export,audit" and line.actor
    assert invoke(app, "keys", "update", "1", "--no-expiry", "--label", "").exit_code == 0
    row = seeded.one("SELECT expires_at, label FROM api_keys WHERE id = 1")
    assert row == {"expires_at": None, "label": None}


def test_the_updated_limit_and_scopes_take_effect(app_factory, seeded):
    # No key cache: its refusals may lag a change by KEY_CACHE_SECONDS (docs/operations.md).
    app = app_factory(KEY_CACHE_SECONDS=0)
    client = app.test_client()
    assert client.get("/api/audit", headers=ABC).status_code == 403
    assert invoke(app, "keys", "update", "1", "--scopes", "export,import,audit").exit_code == 0
    assert client.get("/api/audit", headers=ABC).status_code == 200
    assert invoke(app, "keys", "update", "1", "--daily-limit", "0").exit_code == 0
    assert client.get("/api/export", headers=ABC).status_code == 429


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "999"], "Error: no key with id 999"),
        (["show", "key_ABC123"], "Error: the key id must be a whole number from 1"),
        (["update", "0", "--label", "x"], "Error: the key id must be a whole number from 1"),
        (["update", "1", "--daily-limit", "-1"], "Error: --daily-limit must be a whole number"),
        (["update", "1", "--daily-limit", "2147483648"], "Error: --daily-limit must be"),
        (["update", "1", "--daily-limit", "99999999999"], "Error: --daily-limit must be"),
        (["update", "1", "--scopes", "export,root"], "Error: --scopes takes a comma-separated"),
        (["update", "1", "--expires", "31/12/2030"], "Error: --expires must be a date"),
        (["update", "1", "--expires", "2030-12-31", "--no-expiry"], "Error: give either"),
        (["update", "1", "--label", "x" * 101], "Error: --label must be at most 100"),
        (["update", "1"], "Error: nothing to change"),
        (["update", "999", "--label", "x"], "Error: no key with id 999"),
        (["rotate", "999", "--overlap-days", "7"], "Error: no key with id 999"),
        (["reset-usage", "999"], "Error: no key with id 999"),
        (["create", "--user-id", "1", "--daily-limit", "2147483648"], "Error: --daily-limit"),
    ],
)
def test_bad_input_is_one_line_without_the_value_and_changes_nothing(app, seeded, args, message):
    before = seeded.all("SELECT * FROM api_keys ORDER BY id")
    line = one_line_error(invoke(app, "keys", *args))
    assert line.startswith(message), line
    assert "key_ABC123" not in line and "root" not in line and "31/12" not in line
    assert seeded.all("SELECT * FROM api_keys ORDER BY id") == before


def test_a_limit_at_the_column_maximum_is_accepted(app, seeded):
    assert invoke(app, "keys", "update", "1", "--daily-limit", "2147483647").exit_code == 0
    assert seeded.value("SELECT rate_limit FROM api_keys WHERE id = 1") == 2147483647


def test_rotate_prints_the_new_key_alone_and_both_work_through_the_overlap(app, seeded, events):
    result = invoke(app, "keys", "rotate", "1", "--overlap-days", "7", "--actor", "ops")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and KEY_FORMAT.fullmatch(lines[0])
    new_key = lines[0]
    assert new_key not in result.stderr and new_key[:6] + "..." in result.stderr
    today = utc_now().date()
    old, new = seeded.all(
        "SELECT id, user_id, scopes, rate_limit, expires_at, key_hash, label FROM api_keys "
        "WHERE user_id = 1 ORDER BY id"
    )
    assert old["expires_at"] == today + timedelta(days=7)
    assert (new["user_id"], new["scopes"], new["rate_limit"]) == (1, old["scopes"], 5)
    assert new["expires_at"] is None and new["key_hash"] == key_hash(new_key)
    assert new["label"] == "rotated from key id 1"
    client = app.test_client()
    assert client.get("/api/export", headers=ABC).status_code == 200
    assert client.get("/api/export", headers={"X-API-Key": new_key}).status_code == 200
    (line,) = events("keys.rotate")
    assert (line.actor, line.key_id, line.new_key_id) == ("ops", 1, new["id"])
    assert line.old_key_last_day == (today + timedelta(days=7)).isoformat()
    assert new_key not in seeded.dump()


def test_after_the_overlap_only_the_new_key_works(app, seeded):
    from freezegun import freeze_time

    new_key = invoke(app, "keys", "rotate", "1", "--overlap-days", "7").stdout.strip()
    client = app.test_client()
    with freeze_time(utc_now() + timedelta(days=8)):
        old = client.get("/api/export", headers=ABC)
        assert (old.status_code, old.get_json()["error"]["code"]) == (401, "key_expired")
        assert client.get("/api/export", headers={"X-API-Key": new_key}).status_code == 200


def test_rotate_refuses_a_revoked_key(app, seeded):
    assert invoke(app, "keys", "revoke", "1").exit_code == 0
    line = one_line_error(invoke(app, "keys", "rotate", "1", "--overlap-days", "7"))
    assert "is revoked" in line
    assert seeded.value("SELECT COUNT(*) FROM api_keys") == 2


def test_reset_usage_gives_today_back(app_factory, seeded, events):
    app = app_factory(KEY_CACHE_SECONDS=0)  # the cache's refusals may lag by KEY_CACHE_SECONDS
    client = app.test_client()
    for _ in range(5):
        assert client.get("/api/export", headers=ABC).status_code == 200
    assert client.get("/api/export", headers=ABC).status_code == 429
    result = invoke(app, "keys", "reset-usage", "1")
    assert result.exit_code == 0, result.output
    assert "5 of 5 -> 0" in result.stdout
    assert client.get("/api/export", headers=ABC).status_code == 200
    (line,) = events("keys.reset_usage")
    assert (line.used_before, line.limit, line.key_prefix) == (5, 5, "key_AB")


def test_keys_list_flags_weak_keys(app, seeded):
    invoke(app, "keys", "create", "--user-id", "1")
    result = invoke(app, "keys", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines()[1:] if "..." in line}
    assert rows["key_AB..."].rstrip().endswith("yes") and rows["key_DE..."].rstrip().endswith("yes")
    assert [line for k, line in rows.items() if k.startswith("wk_")][0].rstrip().endswith("no")
    assert "2 weak key(s)" in result.stdout
    assert "key_ABC123" not in result.stdout and DEF["X-API-Key"] not in result.stdout
