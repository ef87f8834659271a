"""The service's setup on a cluster: migrations run through one node reach all three, two
instances migrating through two nodes at once still migrate once, and the Postman collection
passes against an instance on the cluster."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid

import pytest
from galera_cluster import connect, synced_rows, synced_value

from service import migrations
from testkit import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster"), pytest.mark.e2e]


def test_each_node_keeps_temporary_files_in_its_own_folder(healthy_galera):
    """A starting mariadbd deletes every "#sql*" file in its tmpdir: nodes sharing /tmp would delete
    each other's temporary tables (and the machine's own server's), which broke bootstraps."""
    tmpdirs = []
    for node, port in enumerate(healthy_galera.ports):
        conn = connect(port)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@tmpdir AS tmpdir")
                tmpdirs.append(cur.fetchone()["tmpdir"])
        finally:
            conn.close()
        assert tmpdirs[-1] == str(healthy_galera.directory / f"node{node + 1}" / "tmp")


def test_get_lock_is_local_to_one_node_so_the_migration_lock_is_a_replicated_row(healthy_galera):
    """Why the migration lock is not GET_LOCK: two nodes both grant the same lock at once."""
    name = f"wme_probe_{uuid.uuid4().hex[:8]}"
    first, second = connect(healthy_galera.ports[0]), connect(healthy_galera.ports[1])
    try:
        granted = []
        for conn in (first, second):
            with conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, 0) AS got", (name,))
                granted.append(cur.fetchone()["got"])
        assert granted == [1, 1]
    finally:
        first.close()
        second.close()


def test_two_migrations_through_two_nodes_at_once_apply_each_migration_once(healthy_galera):
    name = f"c_{uuid.uuid4().hex[:12]}"
    admin = connect(healthy_galera.ports[0])
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    applied, errors = [], []
    start = threading.Barrier(2)

    def run(node: int) -> None:
        conn = connect(healthy_galera.ports[node], name)
        try:
            start.wait()
            applied.append(len(migrations.migrate(conn, log=lambda _line: None)))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            conn.close()

    try:
        runs = [threading.Thread(target=run, args=(node,)) for node in (0, 1)]
        for t in runs:
            t.start()
        for t in runs:
            t.join(timeout=180)
        assert errors == []
        assert sorted(applied) == [0, len(migrations.available())]
        expected = [m.version for m in migrations.available()]
        for port in healthy_galera.ports:
            versions = [
                r["version"]
                for r in synced_rows(
                    port, name, "SELECT version FROM schema_migrations ORDER BY version"
                )
            ]
            assert versions == expected, port
            assert synced_value(port, name, "SELECT COUNT(*) FROM schema_migrations_lock") == 0
            # Galera replicates InnoDB tables with a primary key only: every table has one.
            assert (
                synced_rows(
                    port,
                    name,
                    """
                SELECT t.table_name FROM information_schema.tables t
                 WHERE t.table_schema = DATABASE() AND t.table_type = 'BASE TABLE'
                   AND (t.engine <> 'InnoDB' OR NOT EXISTS (
                        SELECT 1 FROM information_schema.table_constraints c
                         WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name
                           AND c.constraint_type = 'PRIMARY KEY'))""",
                )
                == []
            )
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def test_the_postman_collection_passes_against_an_instance_on_the_cluster(healthy_galera, tmp_path):
    env = {
        **os.environ,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(healthy_galera.ports[1]),
        "DB_HOSTS": healthy_galera.hosts(first=1),
        "DB_USER": "root",
        "DB_PASS": "",
    }
    done = subprocess.run(
        [str(ROOT / "scripts" / "postman"), "--report-dir", str(tmp_path / "postman")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = [line for line in done.stdout.splitlines() if line.startswith("newman: ")]
    assert summary and summary[0].endswith(" 0 failed"), summary
    print(summary[0])
