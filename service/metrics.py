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

import functools
import ipaddress
import os
import time

from flask import Flask, Response, g, request

UNMATCHED_ROUTE = "(unmatched)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache  # an import statement per call goes through the import machinery
def families():
    """The metric families (service/metric_defs.py), imported on first use; see its docstring
    for why not at import."""
    from service import metric_defs

    return metric_defs


# Each metric's child per label values, kept: labels() converts, validates and locks on every
# call, and the request path asks for four or five children per request. Label values are
# bounded (see above), so this stays small.
_children: dict[tuple, object] = {}


def child(family, *labels: str):
    found = _children.get((family, labels))
    if found is None:
        found = _children[(family, labels)] = family.labels(*labels)
    return found


def audit_rows(outcome: str, count: int = 1) -> None:
    if count:
        child(families().AUDIT_ROWS, outcome).inc(count)


def database_error(kind: str) -> None:
    child(families().DATABASE_ERRORS, kind).inc()


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
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    families()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    @app.before_request
    def start_metrics_clock() -> None:
        g._get_current_object().metrics_started = time.perf_counter()

    @app.after_request
    def count_request(response: Response) -> Response:
        m = families()
        req, ctx = request._get_current_object(), g._get_current_object()
        rule = req.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        method = req.method if req.method in _METHODS else "OTHER"
        child(m.REQUESTS, route, method, str(response.status_code)).inc()
        started = ctx.get("metrics_started")
        if started is not None:
            child(m.LATENCY, route).observe(time.perf_counter() - started)
        code = getattr(response, "error_code", None)
        if code == "quota_exceeded":
            child(m.QUOTA_DECISIONS, "refused").inc()
        elif code in m.AUTH_FAILURE_CODES:
            child(m.AUTH_FAILURES, code).inc()
        elif ctx.get("quota") is not None and req.endpoint != "api.usage":
            # A metered route that set its quota state and was not refused was admitted.
            child(m.QUOTA_DECISIONS, "admitted").inc()
        return response
