"""Shared fixtures: a fresh MariaDB database per test, the app, and the real service on a port.

Every test that touches the database gets its own database (created, migrated, dropped), named
after the xdist worker and a random suffix, so tests run in parallel and never touch
wikimedia_prod. The helpers behind them are in testkit.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service import migrations
from testkit import (  # noqa: F401 - re-exported for older imports by path
    BASE_SETTINGS,
    DB_HOST,
    DB_PASS,
    DB_PORT,
    DB_USER,
    ROOT,
    Served,
    Sql,
    TcpRelay,
    flush_audit,
    free_port,
    fresh_database,
    make_app,
    new_database_name,
    root_connection,
    start_service,
    wait_until,
)


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as name:
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
        app.extensions["audit"].close(timeout=2)
        app.extensions["db"].discard()


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
    migrations.load_sample_data(sql.conn)
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
