"""Liveness and readiness for the reverse proxy, orchestrators and the monitor."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from service import migrations
from service.db import DatabaseUnavailable
from service.errors import ErrorCode, error_response

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    # Liveness only: answers without touching the database.
    return Response("OK", mimetype="text/plain")


@bp.get("/ready")
def ready() -> Response:
    retry = {"Retry-After": str(current_app.config["SETTINGS"].DB_RETRY_AFTER)}
    db = current_app.extensions["db"]
    try:
        version = db.read(migrations.current_version)
    except DatabaseUnavailable:
        return error_response(
            503, ErrorCode.DB_UNAVAILABLE, "The database does not answer.", headers=retry
        )
    except Exception:
        current_app.logger.exception("readiness check failed")
        return error_response(503, ErrorCode.NOT_READY, "Not ready.", headers=retry)
    if version < migrations.latest_version():
        return error_response(503, ErrorCode.NOT_READY, "Migrations are pending.", headers=retry)
    return Response('{"status":"ready"}', mimetype="application/json")
