"""Fixtures of the API tests: one shared sample database per module for the tests that change
nothing (a fresh database per read-only test would only cost time)."""

import pytest

from testkit import shared_app


@pytest.fixture(scope="module")
def shared():
    with shared_app() as pair:
        yield pair


@pytest.fixture
def reader(shared):
    """A client on the module's shared sample database (tests that change nothing)."""
    return shared[0].test_client()


@pytest.fixture
def shared_sql(shared):
    return shared[1]
