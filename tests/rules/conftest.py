"""Fixtures of the pure-rule tests."""

import logging

import pytest


@pytest.fixture(autouse=True)
def keep_root_logger():
    """create_app() configures the root logger from LOG_LEVEL: put it back afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
