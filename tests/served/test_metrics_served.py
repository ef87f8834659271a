"""/metrics on the real service with two gunicorn workers: prometheus_client's multi-process
mode sums every worker's counts, whichever worker answers the scrape, and a previous run's
files in the metrics directory are cleared at start."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from prometheus_client.parser import text_string_to_metric_families

from assertions import ABC, DEF


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_given_directory_is_emptied_of_a_previous_runs_files(sample_database, serve, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from a previous run")
    served = serve(
        sample_database, workers=2, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    )
    assert not (metrics_dir / "counter_999999.db").exists()
    assert requests.get(served.url + "/health", timeout=10).status_code == 200
    samples = scrape(served.url)
    assert value(samples, "wme_http_requests_total", route="/health", method="GET", status="200")
    assert list(metrics_dir.glob("counter_*.db")), "the workers count into the given directory"


def test_counts_from_every_worker_are_summed(sample_database, serve):
    # As an operator starts it: no PROMETHEUS_MULTIPROC_DIR, gunicorn_conf makes one.
    served = serve(sample_database, workers=2)

    def export(_):
        # A new connection each time, several at once: both workers serve some of them.
        return requests.get(served.url + "/api/export?limit=1", headers=DEF, timeout=10)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [r.status_code for r in pool.map(export, range(40))]
    assert statuses == [200] * 40
    refusals = [
        requests.get(served.url + "/api/export?limit=1", headers=ABC, timeout=10).status_code
        for _ in range(6)
    ]
    assert refusals == [200] * 5 + [429]
    assert requests.get(served.url + "/api/usage", timeout=10).status_code == 401

    samples = scrape(served.url)
    route = {"route": "/api/export", "method": "GET"}
    assert value(samples, "wme_http_requests_total", **route, status="200") == 45
    assert value(samples, "wme_http_requests_total", **route, status="429") == 1
    assert value(samples, "wme_quota_decisions_total", decision="admitted") == 45
    assert value(samples, "wme_quota_decisions_total", decision="refused") == 1
    assert value(samples, "wme_auth_failures_total", code="missing_key") == 1
    assert value(samples, "wme_http_request_duration_seconds_count", route="/api/export") == 46
    assert value(samples, "wme_migration_version") >= 1
    assert value(samples, "wme_database_errors_total", kind="unavailable") == 0
    # Public clients never see it: a request relayed by a proxy is refused even from loopback.
    relayed = requests.get(
        served.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10
    )
    assert relayed.status_code == 404
