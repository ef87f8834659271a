"""`flask --app service migrate --plan` changes nothing and tells what the upgrade will do; the
real `migrate` prints the same summary; two instances starting together migrate once; the
compatibility policy (scopes, expiry grace, weak keys) as the upgrade applies it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from legacy_support import (
    fresh_schema,
    legacy_database,
    planted_keys,
    rows_of,
    run_migrate,
    schema_of,
)

import testkit
from service import legacy_upgrade, migrations
from service.quota import utc_now


def flask(database: str, *args: str, **env) -> subprocess.CompletedProcess:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DB_")},
        **{k: str(v) for k, v in testkit.BASE_SETTINGS.items()},
        "DB_NAME": database,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "service", *args],
        cwd=testkit.ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


def everything(database: str) -> tuple:
    sql = testkit.Sql(database)
    try:
        return sql.dump(), schema_of(database)
    finally:
        sql.close()


def test_plan_changes_nothing_and_shows_each_key_by_prefix_only():
    today = utc_now().date()
    grace_end = (today + timedelta(days=legacy_upgrade.DEFAULT_GRACE_DAYS)).isoformat()
    with legacy_database("shipped") as name:
        before = everything(name)
        done = flask(name, "migrate", "--plan")
        assert done.returncode == 0, done.stderr
        assert everything(name) == before, "the plan changed the database"
        out = done.stdout
        assert out.startswith("plan only: nothing has been changed\n")
        lines = out.splitlines()
        abc = next(line for line in lines if line.lstrip().startswith("1  key_AB"))
        def_ = next(line for line in lines if line.lstrip().startswith("2  key_DE"))
        assert "data_importer" in abc and "write" in abc and "audit,export,import" in abc
        assert "api_consumer" in def_ and " read " in def_ and "audit,export " in def_
        for line in (abc, def_):
            assert " 5  active " in line and " yes " in line, line  # limit, status, weak
            assert f"2024-12-31 passed (legacy ignored it): grace until {grace_end}" in line
        assert (
            "totals: 2 legacy key(s), 2 weak (rotate them: flask --app service keys rotate ID "
            "--overlap-days 7), 2 given an expiry grace period, 3 audit row(s) scrubbed to the "
            "key prefix (0 error text(s) held a key), 0 counter(s) freed"
        ) in out
        for key in planted_keys("shipped"):
            assert key not in out + done.stderr and key[:7] not in out + done.stderr


def test_plan_counts_texts_with_keys_and_stuck_counters_and_honours_enforce_now():
    with legacy_database("hand_fixed") as name:
        done = flask(name, "migrate", "--plan", "--enforce-expiry-now")
        assert done.returncode == 0, done.stderr
        assert "0 given an expiry grace period" in done.stdout
        assert "2024-12-31 passed: refused from now on (401)" in done.stdout
        assert "12 audit row(s) scrubbed" in done.stdout
        assert "(6 error text(s) held a key)" in done.stdout
        assert "3 counter(s) freed" in done.stdout  # keys 1, 2 and the stuck key 4
        for key in planted_keys("hand_fixed"):
            assert key not in done.stdout + done.stderr


def test_migrate_prints_the_plan_then_applies_it_and_a_second_plan_has_nothing_to_do():
    with legacy_database("shipped") as name:
        plan = flask(name, "migrate", "--plan").stdout.splitlines()[1:]
        done = flask(name, "migrate")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[: len(plan)] == plan
        latest = migrations.latest_version()
        assert done.stdout.rstrip().endswith(
            f"{latest} migration(s) applied; schema at version {latest}"
        )
        again = flask(name, "migrate", "--plan")
        assert again.stdout.splitlines()[1:] == ["nothing to migrate: the schema is current"]


def test_two_instances_starting_together_migrate_once():
    with legacy_database("hand_fixed") as name:
        start = threading.Barrier(2)
        results = [None, None]

        def run(i):
            start.wait()
            results[i] = flask(name, "migrate")

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
        outs = sorted(r.stdout.splitlines()[-1] for r in results)
        assert outs == [
            f"0 migration(s) applied; schema at version {migrations.latest_version()}",
            f"{migrations.latest_version()} migration(s) applied; schema at version "
            f"{migrations.latest_version()}",
        ]
        assert schema_of(name) == fresh_schema()
        sql = testkit.Sql(name)
        try:
            applied = sql.value("SELECT COUNT(*) FROM schema_migrations")
            assert applied == len(migrations.available())
        finally:
            sql.close()


def test_the_upgrade_refuses_to_hash_real_keys_without_a_secret_or_with_the_sample_one():
    with legacy_database("shipped") as name:
        conn = testkit.root_connection(name)
        try:
            for secret in ("", legacy_upgrade.SAMPLE_KEY_HASH_SECRET):
                with pytest.raises(legacy_upgrade.UpgradeRefused):
                    migrations.migrate(
                        conn, legacy_upgrade.Context(secret=secret), log=lambda _l: None
                    )
        finally:
            conn.close()
        assert run_migrate(name), "with a secret of its own it then completes"


def test_policy_scopes_grace_limits_weak_flags_and_keyed_hashes():
    today = utc_now().date()
    with legacy_database("hand_fixed") as name:
        run_migrate(name, today=today)
        keys = {k["key_prefix"]: k for k in rows_of(name)["api_keys"]}
    # Every key can read its audit trail; read users export (the legacy 403 was defect 6).
    assert keys["key_AB"]["scopes"] == "export,import,audit"  # write
    assert keys["key_DE"]["scopes"] == "export,audit"  # read
    assert keys["key_GH"]["scopes"] == "export,import,audit,admin"  # admin
    grace = today + timedelta(days=legacy_upgrade.DEFAULT_GRACE_DAYS)
    for prefix in ("key_AB", "key_DE"):  # past expiry, valid: graced and labelled
        assert keys[prefix]["expires_at"] == grace
        assert keys[prefix]["label"] == f"legacy key: expired 2024-12-31, grace to {grace}"
    assert keys["key_GH"]["expires_at"].isoformat() == "2030-12-31"  # future: kept
    assert keys["key_MN"]["expires_at"] is None and keys["key_MN"]["is_valid"] == 0
    assert [keys[p]["rate_limit"] for p in ("key_AB", "key_DE", "key_GH")] == [5, 5, 1000]
    assert all(k["weak"] == 1 for k in keys.values()), "10-character legacy keys are weak"
    assert all(k["calls_made"] == 0 and k["last_reset"] is None for k in keys.values())
    plain = {k[:6]: k for k in planted_keys("hand_fixed")}
    for prefix, row in keys.items():
        assert row["key_hash"] == testkit.key_hash(plain[prefix])
        assert row["key_hash"] != hashlib.sha256(plain[prefix].encode()).hexdigest()


def test_enforce_expiry_now_keeps_the_legacy_dates():
    with legacy_database("shipped") as name:
        run_migrate(name, grace_days=0)
        keys = rows_of(name)["api_keys"]
    assert [k["expires_at"].isoformat() for k in keys] == ["2024-12-31", "2024-12-31"]
    assert [k["label"] for k in keys] == [None, None]
