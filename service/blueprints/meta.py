"""What the service says about itself: its OpenAPI description and its Prometheus metrics.

Neither needs a key nor costs quota. /metrics answers only clients whose address is in
METRICS_ALLOW (loopback by default), and never a request relayed by a proxy (one carrying
X-Forwarded-For or Forwarded): to anyone else it is a 404, as if it did not exist.
"""

from __future__ import annotations

import functools
import json

import yaml
from flask import Blueprint, Response, current_app, request

from service import metrics, migrations
from service.config import PROJECT_ROOT
from service.errors import ApiError, ErrorCode

bp = Blueprint("meta", __name__)

OPENAPI_PATH = PROJECT_ROOT / "docs" / "openapi.yaml"


@functools.cache
def openapi_json() -> bytes:
    """docs/openapi.yaml as JSON, converted once per process."""
    with OPENAPI_PATH.open(encoding="utf-8") as source:
        document = yaml.safe_load(source)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(openapi_json(), mimetype="application/json")


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    networks = current_app.extensions["metrics_allow"]
    relayed = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if relayed or not metrics.allowed(request.remote_addr, networks):
        raise ApiError(404, ErrorCode.NOT_FOUND, "No such route.")
    _read_migration_version()
    return metrics.exposition()


def _read_migration_version() -> None:
    metrics.families().MIGRATION_LATEST.set(migrations.latest_version())
    try:
        version = current_app.extensions["db"].read(migrations.current_version)
    except Exception:  # the database is down: the scrape still answers, without the version
        current_app.logger.warning("metrics: migration version unreadable", exc_info=False)
        return
    metrics.families().MIGRATION_VERSION.set(version)
