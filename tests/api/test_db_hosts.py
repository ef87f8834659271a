"""DB_HOSTS: several database servers (a cluster's nodes), tried in order; the service moves on to
the next when the one it uses is lost, and comes back to none of them by itself."""

from __future__ import annotations

import pytest

from service.config import ConfigError, Settings
from service.db import current_address
from testkit import DB_HOST, DB_PORT, TEST_SECRET, TcpRelay, free_port

EXPORT = "/api/export?limit=1"
DEF = {"X-API-Key": "key_DEF456"}


def hosts(*ports: int) -> str:
    return ",".join(f"127.0.0.1:{p}" for p in ports)


def load(**values: object) -> Settings:
    # The secret is given here: these tests must not depend on the caller's environment.
    return Settings.load({"KEY_HASH_SECRET": TEST_SECRET, **values})


def test_without_db_hosts_the_single_host_is_used():
    settings = load(DB_HOST="db.internal", DB_PORT=3307, DB_HOSTS="")
    assert settings.db_addresses == (("db.internal", 3307),)


def test_db_hosts_wins_over_db_host_and_keeps_its_order():
    settings = load(DB_HOST="x", DB_HOSTS="10.0.0.2:3306, [::1]:3307,db:3308")
    assert settings.db_addresses == (("10.0.0.2", 3306), ("::1", 3307), ("db", 3308))


@pytest.mark.parametrize(
    "value", ["db", "db:0", "db:70000", "db:3306,,db2:3306", "db:3306,db:3306", "s3cret-pass:x"]
)
def test_a_malformed_host_list_stops_the_boot_without_echoing_it(value):
    with pytest.raises(ConfigError) as caught:
        load(DB_HOSTS=value)
    assert "DB_HOSTS" in str(caught.value)
    assert value not in str(caught.value)


def test_a_host_that_refuses_connections_is_skipped(app_factory, seeded):
    client = app_factory(DB_HOSTS=f"127.0.0.1:{free_port()},{DB_HOST}:{DB_PORT}").test_client()
    assert client.get(EXPORT, headers=DEF).status_code == 200


def test_a_lost_host_moves_the_service_to_the_next_one(app_factory, seeded):
    relay = TcpRelay()
    try:
        app = app_factory(
            DB_HOSTS=f"127.0.0.1:{relay.port},{DB_HOST}:{DB_PORT}", DB_CONNECT_TIMEOUT=1
        )
        client = app.test_client()
        assert client.get(EXPORT, headers=DEF).status_code == 200
        relay.cut()  # the first host dies under the kept connection
        after = [client.get(EXPORT, headers=DEF).status_code for _ in range(3)]
        # The authentication read finds the kept connection dead and is retried on the next
        # host; so no request of the three is refused.
        assert after == [200, 200, 200]
        relay.restore()
        # The service stays where it is now; it does not bounce back while the next one works.
        assert client.get(EXPORT, headers=DEF).status_code == 200
        assert relay._pairs == [], "no new connection went to the first host"
    finally:
        relay.close()


def test_when_every_host_is_down_the_request_fails_closed(app_factory, seeded):
    client = app_factory(DB_HOSTS=hosts(free_port(), free_port()), DB_CONNECT_TIMEOUT=1)
    response = client.test_client().get(EXPORT, headers=DEF)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "db_unavailable"


def test_a_connection_the_driver_closed_is_replaced_on_the_same_host(app_factory, seeded):
    relay = TcpRelay()
    try:
        app = app_factory(DB_HOSTS=f"127.0.0.1:{relay.port},{DB_HOST}:{DB_PORT}")
        client = app.test_client()
        assert client.get(EXPORT, headers=DEF).status_code == 200
        # PyMySQL closes a connection itself after some errors (a streamed export's query whose
        # rest could not be read): that is not a lost host.
        app.extensions["db"].connection().close()
        assert client.get(EXPORT, headers=DEF).status_code == 200
        assert current_address(app.config["SETTINGS"]) == ("127.0.0.1", relay.port)
    finally:
        relay.close()
