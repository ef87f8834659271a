"""Prometheus metrics: what the service knows about itself, for the operator's scraper.

Under gunicorn every worker counts into files in `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's
multi-process mode; service/gunicorn_conf.py sets a fresh directory per instance before any
worker starts), and /metrics sums them, so a scrape sees the whole instance whichever worker
answers it. Without that variable (the Flask test client, `flask run`) the counts are this
process's own.

Labels are bounded and never carry client text: a route is the matched rule's template (or
`(unmatched)`), a method is one of HTTP's, a code is one of `ErrorCode`. No key, key prefix or
client address is ever a label. The request path costs a few counter increments and one
histogram observation (each a write to a memory-mapped file in multi-process mode).
"""

from __future__ import annotations

import ipaddress
import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

PREFIX = "wme"
UNMATCHED_ROUTE = "(unmatched)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_AUTH_FAILURES = frozenset({
    "missing_key",
    "invalid_key",
    "key_expired",
    "key_disabled",
    "insufficient_scope",
    "too_many_failed_authentications",
})

REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time from the request's arrival in the app to its response (streamed bodies excluded).",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUOTA_DECISIONS = Counter(
    f"{PREFIX}_quota_decisions",
    "Metered requests admitted or refused (429) by the daily quota.",
    ["decision"],
)
AUTH_FAILURES = Counter(
    f"{PREFIX}_auth_failures",
    "Requests refused for their key (401, 403), by error code.",
    ["code"],
)
AUDIT_ROWS = Counter(
    f"{PREFIX}_audit_rows",
    "Audit rows by what happened to them: buffered, written, retried (kept after a failed "
    "write), lost (dropped: buffer full while the database was down, or left at exit).",
    ["outcome"],
)
DATABASE_ERRORS = Counter(
    f"{PREFIX}_database_errors",
    "Database errors by kind: unavailable (connection refused or lost), conflict (deadlock, "
    "lock wait timeout or certification conflict, retried), other (a query the database "
    "refused: a bug or a missing privilege).",
    ["kind"],
)
MIGRATION_VERSION = Gauge(
    f"{PREFIX}_migration_version",
    "Highest applied schema migration, read at scrape time (absent while the database is down).",
    multiprocess_mode="max",
)
MIGRATION_LATEST = Gauge(
    f"{PREFIX}_migration_latest_version",
    "Highest migration this build ships; above wme_migration_version means migrations pending.",
    multiprocess_mode="max",
)

# Every label value each metric can take is created at import, so the series exist (at 0) from
# the first scrape on: an alert on `increase(...)` needs the series before its first event.
for _decision in ("admitted", "refused"):
    QUOTA_DECISIONS.labels(_decision)
for _outcome in ("buffered", "written", "retried", "lost"):
    AUDIT_ROWS.labels(_outcome)
for _kind in ("unavailable", "conflict", "other"):
    DATABASE_ERRORS.labels(_kind)
for _code in _AUTH_FAILURES:
    AUTH_FAILURES.labels(_code)


def audit_rows(outcome: str, count: int = 1) -> None:
    if count:
        AUDIT_ROWS.labels(outcome).inc(count)


def database_error(kind: str) -> None:
    DATABASE_ERRORS.labels(kind).inc()


def allowed(remote_addr: str | None, networks) -> bool:
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def exposition() -> Response:
    """The metrics in Prometheus' text format: the instance's, summed over its workers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    @app.before_request
    def start_metrics_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count_request(response: Response) -> Response:
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        method = request.method if request.method in _METHODS else "OTHER"
        REQUESTS.labels(route, method, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            LATENCY.labels(route).observe(time.perf_counter() - started)
        code = getattr(response, "error_code", None)
        if code == "quota_exceeded":
            QUOTA_DECISIONS.labels("refused").inc()
        elif code in _AUTH_FAILURES:
            AUTH_FAILURES.labels(code).inc()
        elif g.get("quota") is not None and request.endpoint != "api.usage":
            # A metered route that set its quota state and was not refused was admitted.
            QUOTA_DECISIONS.labels("admitted").inc()
        return response
