"""Which database errors mean "unavailable" (503, reconnect) and which are bugs (500)."""

import pymysql
import pytest

from service.db import is_unavailable


@pytest.mark.parametrize("code", [2003, 2006, 2013, 1040, 1053, 1205, 1213, 1927, 4031])
def test_lost_or_refused_connections_and_transient_locks_are_unavailable(code):
    assert is_unavailable(pymysql.err.OperationalError(code, "x"))


@pytest.mark.parametrize("code", [1142, 1143, 1044, 1356])
def test_missing_privileges_are_not_an_outage(code):
    # A bad grant must surface as a 500 to fix, not as a 503 that clients retry forever.
    assert not is_unavailable(pymysql.err.OperationalError(code, "x"))


def test_interface_errors_mean_the_connection_is_gone():
    assert is_unavailable(pymysql.err.InterfaceError(0, ""))
