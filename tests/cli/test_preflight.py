"""`python -m service.preflight`: what scripts/run and scripts/test check before they start
anything. Only the local MariaDB's own address may be started by the scripts."""

from __future__ import annotations

import socket

import pytest

from service import preflight
from service.config import Settings
from testkit import DB_HOST, DB_PASS, DB_PORT, DB_USER, free_port

REACHABLE = Settings(DB_HOST=DB_HOST, DB_PORT=DB_PORT, DB_USER=DB_USER, DB_PASS=DB_PASS)


def test_a_reachable_server_passes():
    assert preflight.check_database(REACHABLE, wait=0) == 0


def test_the_local_server_address_when_down_may_be_started(monkeypatch, capsys):
    port = free_port()
    monkeypatch.setattr(preflight, "local_server_port", lambda: port)
    down = Settings(DB_HOST="127.0.0.1", DB_PORT=port)
    assert preflight.check_database(down, wait=0) == preflight.EXIT_LOCAL_SERVER_DOWN
    assert capsys.readouterr().err == ""  # the script says what it starts


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_another_local_port_is_never_started(monkeypatch, capsys, host):
    port = free_port()
    monkeypatch.setattr(preflight, "local_server_port", lambda: 3306)
    status = preflight.check_database(Settings(DB_HOST=host, DB_PORT=port), wait=0)
    assert status == preflight.EXIT_FAILED
    assert f"connection refused at {host}:{port}" in capsys.readouterr().err


def test_wrong_password_is_named(capsys):
    wrong = Settings(DB_HOST=DB_HOST, DB_PORT=DB_PORT, DB_USER=DB_USER, DB_PASS="wrong-pass")
    assert preflight.check_database(wrong, wait=0) == preflight.EXIT_FAILED
    err = capsys.readouterr().err
    assert err == (
        f"cannot use the database server: access denied for user {DB_USER} at "
        f"{DB_HOST}:{DB_PORT} (check DB_USER and DB_PASS)\n"
    )


def test_a_taken_port_names_a_free_one(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = preflight.check_port(Settings(BIND_HOST="127.0.0.1", PORT=port))
    assert status == preflight.EXIT_FAILED
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is taken" in err and "e.g. PORT=" in err
