"""Fixtures of the cluster tests: one real three-node Galera cluster per test session (started by
scripts/galera on free ports, stopped at the end), a fresh database on it per test, and instances
of the real service, each on its own node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from galera_cluster import Cluster, cluster_database, session_cluster

from testkit import Served, start_service


@pytest.fixture(scope="session")
def galera() -> Iterator[Cluster]:
    with session_cluster() as cluster:
        yield cluster


@pytest.fixture
def healthy_galera(galera) -> Cluster:
    """The cluster with all three nodes synced (a test that killed one brings it back)."""
    if not galera.healthy():
        galera.run("start")
    assert galera.healthy(), "the cluster is not three synced nodes"
    return galera


@pytest.fixture
def cluster_db(healthy_galera) -> Iterator[str]:
    with cluster_database(healthy_galera) as name:
        yield name


@pytest.fixture
def instances(tmp_path, healthy_galera) -> Iterator:
    """Start the real service on the cluster: instance n prefers node n, then the others."""
    started: list[Served] = []

    def launch(database: str, node: int, *, workers: int = 2, extra_env=None) -> Served:
        cluster = healthy_galera
        env = {
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(cluster.ports[node]),
            "DB_HOSTS": cluster.hosts(first=node),
            **(extra_env or {}),
        }
        served = start_service(
            database, tmp_path / f"instance-{len(started)}.log", workers=workers, extra_env=env
        )
        started.append(served)
        return served

    yield launch
    for served in started:
        served.stop()
