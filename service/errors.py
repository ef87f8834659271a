"""One JSON error shape for every error: `{"error": {"code": "...", "message": "..."}}`.

The codes are a fixed list (`ErrorCode`); the same code is what the audit trail records, so no free
text that could carry a secret ever reaches `audit_logs`. Messages never echo a presented key.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum

import pymysql
from flask import Flask, Response, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from service import metrics
from service.db import DatabaseBusy, DatabaseUnavailable, SchemaNotReady
from service.masking import redact_keys

log = logging.getLogger("service.errors")


class ErrorCode(StrEnum):
    MISSING_KEY = "missing_key"
    INVALID_KEY = "invalid_key"
    KEY_EXPIRED = "key_expired"
    KEY_DISABLED = "key_disabled"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    QUOTA_EXCEEDED = "quota_exceeded"
    BAD_REQUEST = "bad_request"
    VALIDATION_ERROR = "validation_error"
    MALFORMED_JSON = "malformed_json"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    DB_UNAVAILABLE = "db_unavailable"
    SERVICE_BUSY = "service_busy"
    TOO_MANY_FAILED_AUTHENTICATIONS = "too_many_failed_authentications"
    NOT_READY = "not_ready"
    INTERNAL_ERROR = "internal_error"


# Werkzeug's HTTP errors, by status, mapped onto our codes.
_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


class ApiError(Exception):
    """Raised anywhere in a request to answer with the JSON error shape."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        *,
        details: list | None = None,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.extra = extra
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


# What jsonify() writes outside debug mode (ASCII only, compact, keys in insertion order: the app
# sets sort_keys off), built once: jsonify builds a new encoder for every body. Error bodies hold
# only strings, numbers and lists of them; the default covers anything else as jsonify would.
_ERROR_JSON = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), default=DefaultJSONProvider.default
)

# RFC 9110: every 401 names the scheme a client should use.
_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="export", charset="UTF-8"'}


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    *,
    details: list | None = None,
    headers: dict[str, str] | None = None,
    extra: dict | None = None,
) -> Response:
    body: dict = {"code": str(code), "message": message, **(extra or {})}
    if details:
        body["details"] = details
    app = current_app._get_current_object()
    if app.debug:  # jsonify indents in debug mode
        response = jsonify(error=body)
    else:
        text = _ERROR_JSON.encode({"error": body}) + "\n"
        response = app.response_class(text, mimetype="application/json")
    response.status_code = status
    # A fresh response holds only Content-Type and Content-Length: extend, no need to replace.
    if status == 401:
        response.headers.extend(_AUTHENTICATE)
    if headers:
        response.headers.extend(headers)
    # The audit trail reads the code from here rather than parsing the body.
    response.error_code = str(code)
    return response


def api_error_response(exc: ApiError) -> Response:
    return error_response(
        exc.status,
        exc.code,
        exc.message,
        details=exc.details,
        headers=exc.headers,
        extra=exc.extra,
    )


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return api_error_response(exc)

    @app.errorhandler(DatabaseUnavailable)
    def handle_db_unavailable(exc: DatabaseUnavailable):
        # The cause goes to the log once per change (OutageLog), never per request.
        app.extensions["db"].outages.failed(str(exc))
        retry = str(app.config["SETTINGS"].DB_RETRY_AFTER)
        return error_response(
            503,
            ErrorCode.DB_UNAVAILABLE,
            "The service cannot reach its database. Retry after the given number of seconds.",
            headers={"Retry-After": retry},
        )

    @app.errorhandler(DatabaseBusy)
    def handle_db_busy(exc: DatabaseBusy):
        log.warning("database busy after retries: %s", exc)
        return error_response(
            503,
            ErrorCode.SERVICE_BUSY,
            "The service is busy (other requests held the same rows). Retry in a moment.",
            headers={"Retry-After": "1"},
        )

    @app.errorhandler(SchemaNotReady)
    def handle_schema_not_ready(exc: SchemaNotReady):
        app.extensions["db"].outages.failed(str(exc))
        retry = str(app.config["SETTINGS"].DB_RETRY_AFTER)
        return error_response(
            503, ErrorCode.NOT_READY, not_ready_message(exc), headers={"Retry-After": retry}
        )

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        status = exc.code or 500
        fallback = ErrorCode.BAD_REQUEST if status < 500 else ErrorCode.INTERNAL_ERROR
        code = _HTTP_CODES.get(status, fallback)
        headers = dict(exc.get_headers())  # keeps Allow on 405
        headers.pop("Content-Type", None)
        message = _http_message(status, exc)
        return error_response(status, code, message, headers=headers)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        # The traceback goes to the log (no locals, so no secrets); the client gets no internals.
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        if isinstance(exc, pymysql.err.Error):
            metrics.database_error("other")
        return error_response(500, ErrorCode.INTERNAL_ERROR, "Internal error.")


def not_ready_message(exc: SchemaNotReady) -> str:
    """What a client is told: which of the two, without the operator's command."""
    if "does not exist" in str(exc):
        return "The service's database does not exist yet. Retry later."
    return "The service's database is not ready: migrations are pending. Retry later."


def _http_message(status: int, exc: HTTPException) -> str:
    if status == 404:
        return "No such route."
    if status == 405:
        return f"Method {redact_keys(request.method)} is not allowed here."
    if status == 413:
        return "The request body is larger than this service accepts."
    return exc.description or exc.name
