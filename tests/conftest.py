"""Fixtures of every test folder: a fresh MariaDB database per test, the app, its client and CLI
runner, and the real service on a port.

Every test that touches the database gets its own database (created, migrated, dropped), named
after the xdist worker and a random suffix, so tests run in parallel and never touch
wikimedia_prod. The helpers behind them are in testkit.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from service import migrations
from testkit import (
    TEST_SECRET,
    Served,
    Sql,
    TcpRelay,
    close_app,
    fresh_database,
    make_app,
    root_connection,
    start_service,
)


def pytest_configure(config) -> None:
    # Every test gives the service its secret itself (testkit.TEST_SECRET): one the caller
    # exported (scripts/test exports one for its own commands) must change nothing, so a bare
    # `pytest` and scripts/test run the same tests the same way.
    for name in ("KEY_HASH_SECRET", "KEY_HASH_SECRET_PREVIOUS"):
        os.environ.pop(name, None)


@pytest.fixture(scope="module")
def module_database() -> Iterator[str]:
    with fresh_database() as name:
        yield name


@pytest.fixture
def database(request) -> Iterator[str]:
    """A fresh migrated database for the test, with the sample data if marked `sample_data`.

    In a module marked `reuse_database` (its tests touch audit_logs only) the tests share one
    database per module instead, emptied of audit rows before each test: migrating costs about
    a second a test.
    """
    if request.node.get_closest_marker("reuse_database") is None:
        sample = request.node.get_closest_marker("sample_data") is not None
        with fresh_database(sample=sample) as name:
            yield name
        return
    name = request.getfixturevalue("module_database")
    conn = root_connection(name)
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM audit_logs")
    finally:
        conn.close()
    yield name


@pytest.fixture
def sample_database() -> Iterator[str]:
    with fresh_database(sample=True) as name:
        yield name


@pytest.fixture
def sql(database) -> Iterator[Sql]:
    helper = Sql(database)
    yield helper
    helper.close()


@pytest.fixture
def app_factory(database):
    """Build apps on the test database; each is shut down (audit flushed) at the end."""
    apps = []

    def build(**overrides):
        app = make_app(database, **overrides)
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_app(app)


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def seeded(sql) -> Sql:
    """The test database with the sample users, keys and articles loaded."""
    migrations.load_sample_data(sql.conn, TEST_SECRET)
    return sql


@pytest.fixture
def log_records(caplog):
    """Every log record of the service, at INFO and above."""
    caplog.set_level(logging.INFO)
    return caplog


@pytest.fixture
def serve(tmp_path) -> Iterator:
    """Start the real service; every instance is stopped with SIGTERM at the end."""
    started: list[Served] = []

    def launch(database: str, **kwargs) -> Served:
        served = start_service(database, tmp_path / f"serve-{len(started)}.log", **kwargs)
        started.append(served)
        return served

    yield launch
    for served in started:
        served.stop()


@pytest.fixture
def db_relay() -> Iterator[TcpRelay]:
    relay = TcpRelay()
    yield relay
    relay.close()
