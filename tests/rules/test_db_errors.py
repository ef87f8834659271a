"""Which database errors mean "unavailable" (503, reconnect) and which are bugs (500)."""

import pymysql
import pytest

from service.db import host_lost, is_conflict, is_unavailable


@pytest.mark.parametrize("code", [2003, 2006, 2013, 1040, 1047, 1053, 1927, 4031])
def test_lost_or_refused_connections_are_unavailable(code):
    assert is_unavailable(pymysql.err.OperationalError(code, "x"))


@pytest.mark.parametrize("code", [1205, 1213])
def test_deadlocks_and_lock_waits_are_conflicts_to_retry_not_an_outage(code):
    error = pymysql.err.OperationalError(code, "x")
    assert is_conflict(error) and not is_unavailable(error) and not host_lost(error)


@pytest.mark.parametrize("code", [1047, 2003, 2013])
def test_a_node_gone_or_out_of_the_cluster_moves_to_the_next_host(code):
    assert host_lost(pymysql.err.OperationalError(code, "x"))


@pytest.mark.parametrize("code", [1040, 1045, 1205, 1213])
def test_a_busy_or_refusing_server_keeps_its_place_in_the_host_list(code):
    assert not host_lost(pymysql.err.OperationalError(code, "x"))


@pytest.mark.parametrize("code", [1142, 1143, 1044, 1356])
def test_missing_privileges_are_not_an_outage(code):
    # A bad grant must surface as a 500 to fix, not as a 503 that clients retry forever.
    assert not is_unavailable(pymysql.err.OperationalError(code, "x"))


def test_interface_errors_mean_the_connection_is_gone():
    assert is_unavailable(pymysql.err.InterfaceError(0, ""))
