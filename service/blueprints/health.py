"""Liveness and readiness for the reverse proxy, orchestrators and the monitor."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from service import migrations
from service.db import MIGRATE_COMMAND, DatabaseUnavailable, SchemaNotReady
from service.errors import ErrorCode, error_response, not_ready_message

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
    except DatabaseUnavailable as exc:
        db.outages.failed(str(exc))
        return error_response(
            503, ErrorCode.DB_UNAVAILABLE, "The database does not answer.", headers=retry
        )
    except SchemaNotReady as exc:
        db.outages.failed(str(exc))
        return error_response(503, ErrorCode.NOT_READY, not_ready_message(exc), headers=retry)
    except Exception:
        current_app.logger.exception("readiness check failed")
        return error_response(503, ErrorCode.NOT_READY, "Not ready.", headers=retry)
    latest = migrations.latest_version()
    if version < latest:
        db.outages.failed(
            f"migrations are pending (schema at version {version} of {latest}); "
            f"run {MIGRATE_COMMAND}"
        )
        return error_response(
            503,
            ErrorCode.NOT_READY,
            "The service's database is not ready: migrations are pending. Retry later.",
            headers=retry,
        )
    db.outages.recovered()
    return Response('{"status":"ready"}', mimetype="application/json")
