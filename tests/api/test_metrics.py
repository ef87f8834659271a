"""GET /metrics through the test client: who may read it (METRICS_ALLOW, never through a proxy),
the metric names, and counts that move with requests. The same with two gunicorn workers:
tests/served/test_metrics_served.py."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assertions import ABC, DEF, assert_error
from service.config import ConfigError
from testkit import make_app

NAMES = {
    "wme_http_requests",
    "wme_http_request_duration_seconds",
    "wme_quota_decisions",
    "wme_auth_failures",
    "wme_audit_rows",
    "wme_database_errors",
    "wme_migration_version",
    "wme_migration_latest_version",
}


def scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_every_documented_metric_is_exposed(reader):
    reader.get("/health")  # a labelled series appears with its first request
    samples = scrape(reader)
    exposed = {name for name, _ in samples}
    for name in NAMES:
        assert any(e == name or e.startswith(name + "_") for e in exposed), name


def test_counts_move_with_requests(reader, shared_sql):
    before = scrape(reader)
    assert reader.get("/api/export?limit=1", headers=DEF).status_code == 200
    assert reader.get("/api/export?limit=1", headers=DEF).status_code == 200
    assert reader.get("/api/export", headers={"X-API-Key": "key_nope"}).status_code == 401
    assert reader.get("/api/audit", headers=ABC).status_code == 403
    assert reader.get("/api/export?limit=0", headers=DEF).status_code == 400
    assert reader.get("/nowhere/at/all/x1").status_code == 404
    after = scrape(reader)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "/api/export", "method": "GET"}
    assert moved("wme_http_requests_total", **route, status="200") == 2
    assert moved("wme_http_requests_total", **route, status="401") == 1
    assert moved("wme_http_requests_total", **route, status="400") == 1
    unmatched = {"route": "(unmatched)", "method": "GET", "status": "404"}
    assert moved("wme_http_requests_total", **unmatched) == 1
    assert moved("wme_quota_decisions_total", decision="admitted") == 2
    assert moved("wme_auth_failures_total", code="invalid_key") == 1
    assert moved("wme_auth_failures_total", code="insufficient_scope") == 1
    assert moved("wme_http_request_duration_seconds_count", route="/api/export") == 4
    assert value(after, "wme_migration_version") == value(after, "wme_migration_latest_version")
    assert value(after, "wme_migration_version") > 0


def test_no_key_prefix_or_address_in_any_label(reader, shared_sql):
    reader.get("/api/export?limit=1", headers=DEF)
    reader.get("/api/key_DEF456/export", headers=DEF)  # a key pasted into a path
    reader.get("/api/export", headers={"X-API-Key": "key_ABC123x"})
    text = reader.get("/metrics").get_data(as_text=True)
    for secret in ("key_DE", "key_AB", "key_DEF456", "127.0.0.1"):
        assert secret not in text


def test_refusals_are_counted(app_factory, seeded):
    client = app_factory().test_client()
    before = scrape(client)
    statuses = [client.get("/api/export?limit=1", headers=ABC).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    after = scrape(client)
    refused = value(after, "wme_quota_decisions_total", decision="refused")
    assert refused - value(before, "wme_quota_decisions_total", decision="refused") == 1
    admitted = value(after, "wme_quota_decisions_total", decision="admitted")
    assert admitted - value(before, "wme_quota_decisions_total", decision="admitted") == 5


def test_audit_rows_written_are_counted(app_factory, seeded):
    app = app_factory()
    client = app.test_client()
    before = scrape(client)
    client.get("/api/usage", headers=DEF)
    assert app.extensions["audit"].flush()
    after = scrape(client)
    for outcome in ("buffered", "written"):
        moved = value(after, "wme_audit_rows_total", outcome=outcome) - value(
            before, "wme_audit_rows_total", outcome=outcome
        )
        assert moved >= 1, outcome


@pytest.mark.parametrize("address", ["10.1.2.3", "192.0.2.7", "2001:db8::1"])
def test_other_addresses_get_a_404(reader, address):
    response = reader.get("/metrics", environ_base={"REMOTE_ADDR": address})
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded"])
def test_a_relayed_request_gets_a_404_even_from_loopback(reader, header):
    response = reader.get("/metrics", headers={header: "203.0.113.9"})
    assert_error(response, 404, "not_found")


def test_metrics_allow_admits_an_operators_network(shared):
    app = make_app(shared[1].database, METRICS_ALLOW="10.0.0.0/8, 192.0.2.7")
    try:
        client = app.test_client()
        for address in ("10.1.2.3", "192.0.2.7"):
            assert scrape(client, environ_base={"REMOTE_ADDR": address})
        refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert refused.status_code == 404  # the default (loopback) no longer applies
    finally:
        app.extensions["audit"].close(timeout=2)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "localhost", "10.0.0.1/8/1"])
def test_a_malformed_metrics_allow_refuses_boot(bad):
    with pytest.raises(ConfigError, match="METRICS_ALLOW"):
        make_app("unused", METRICS_ALLOW=bad)
