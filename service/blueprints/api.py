"""The API routes, and the hook that authenticates, authorises, validates and meters each one.

| route            | scope  | metered |
| ---------------- | ------ | ------- |
| GET  /api/export | export | yes     |
| POST /api/import | import | yes     |
| GET  /api/audit  | audit  | yes     |
| GET  /api/usage  | any    | no      |
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Blueprint, Request, Response, current_app, g, request, stream_with_context
from marshmallow import Schema

from service import auth, metering, quota
from service.errors import ApiError, ErrorCode, api_error_response
from service.imports import read_articles, write_articles
from service.masking import mask_key
from service.repositories import articles, audit_logs
from service.schemas import (
    AuditQuery,
    ExportQuery,
    audit_rows_out,
    encode_cursor,
    load_query,
)
from service.streaming import StreamOutcome, abort_on_failure

bp = Blueprint("api", __name__, url_prefix="/api")

# Rows per chunk of a streamed NDJSON export: bounded memory whatever the result size.
STREAM_PAGE = 2000
# Rows per query of a streamed export, read STREAM_PAGE at a time (articles.ndjson_batches): the
# server forms rows while the worker sends, and a client that leaves early costs at most this
# many rows read and dropped.
STREAM_SEGMENT = 20_000


@dataclass(frozen=True)
class RoutePolicy:
    scope: str | None  # None: any valid key
    metered: bool
    query: type[Schema] | None = None  # validated before metering: a 400 costs no quota
    body: Callable[[Request], object] | None = None  # read and validated before metering too


_POLICIES: dict[str, RoutePolicy] = {}


def policy(
    *,
    scope: str | None,
    metered: bool,
    query: type[Schema] | None = None,
    body: Callable[[Request], object] | None = None,
) -> Callable:
    """Declare a route's scope, whether it consumes quota, and how its query string and body are
    validated; the hook below enforces them, in that order."""

    def register(view: Callable) -> Callable:
        _POLICIES[f"{bp.name}.{view.__name__}"] = RoutePolicy(scope, metered, query, body)
        return view

    return register


@bp.before_request
def authenticate_authorise_validate_meter() -> Response | None:
    # Flask's proxies read once each: every attribute read through one is a context lookup.
    req, ctx = request._get_current_object(), g._get_current_object()
    if req.method == "OPTIONS":
        return None  # Flask answers with Allow; a preflight neither needs a key nor costs quota
    route = _POLICIES.get(req.endpoint or "")
    if route is None:  # every api route must declare its policy: fail closed
        raise ApiError(404, ErrorCode.NOT_FOUND, "No such route.")
    now = quota.utc_now()
    db = current_app._get_current_object().extensions["db"]
    key = auth.authenticate(db, now)
    ctx.api_key = key
    auth.require_scope(key, route.scope)
    if route.query is not None:
        ctx.params = _valid_query(route.query, req)
    if route.body is not None:
        ctx.body = route.body(req)
    if route.metered:
        try:
            metering.charge(db, key, now, route.scope)
        except ApiError as refusal:
            # Metering's refusal (the quota, or what a fresh read of a stale cached key says),
            # answered with the response the app's ApiError handler gives (the same function):
            # a response returned by a before_request hook skips Flask's error-handler search.
            return api_error_response(refusal)
    return None


@bp.after_request
def settle_and_add_quota_headers(response: Response) -> Response:
    metering.refund_if_failed(
        current_app._get_current_object().extensions["db"], response.status_code
    )
    state = g._get_current_object().get("quota")
    if state is not None:
        # extend, not update: nothing else sets these, and update scans every header per field.
        response.headers.extend(state.headers())
    return response


@bp.get("/export")
@policy(scope="export", metered=True, query=ExportQuery)
def export() -> Response:
    params = g._get_current_object().params
    if params["format"] == "ndjson":
        return _export_ndjson(params)
    db = current_app._get_current_object().extensions["db"]
    page = {"before_id": params["cursor"], "since": params["since"], "limit": params["limit"] + 1}
    with db.cursor() as cur:
        # The objects come formed by the database (articles.JSON_OBJECTS), one value per row.
        objects = articles.json_page(cur, **page)
    has_more = len(objects) > params["limit"]
    objects = objects[: params["limit"]]
    next_cursor = encode_cursor(articles.object_id(objects[-1])) if has_more else None
    # Byte for byte _JSON.encode({"status": "success", "data": [...], "next_cursor": ...}).
    body = b"".join(
        (
            b'{"status":"success","data":[',
            b",".join(objects),
            b'],"next_cursor":',
            _JSON.encode(next_cursor).encode(),
            b"}",
        )
    )
    return Response(body, mimetype="application/json")


def _export_ndjson(params: dict) -> Response:
    db = current_app.extensions["db"]
    remaining = params["limit"]

    def generate() -> Iterator[bytes]:
        nonlocal remaining
        before_id = params["cursor"]
        while remaining is None or remaining > 0:
            size = STREAM_SEGMENT if remaining is None else min(STREAM_SEGMENT, remaining)
            count = 0
            # The lines come formed by the database (articles.NDJSON_LINES), one value per row.
            with db.cursor() as cur:
                for rows, last_id, lines in articles.ndjson_batches(
                    cur, before_id=before_id, since=params["since"], limit=size, batch=STREAM_PAGE
                ):
                    count += rows
                    before_id = last_id
                    yield lines
            if remaining is not None:
                remaining -= count
            if count < size:
                return

    outcome = StreamOutcome()
    body = stream_with_context(
        abort_on_failure(generate(), outcome, refund=lambda: metering.refund(db))
    )
    response = Response(body, mimetype="application/x-ndjson")
    response.stream_outcome = outcome  # audit.py records the row when the stream ends
    # Tells nginx (scripts/proxy) to pass this response on as it is produced instead of spooling
    # it: the client gets the first line at once, and the proxy holds no copy of the export.
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.post("/import")
@policy(scope="import", metered=True, body=read_articles)
def import_() -> Response:
    count = write_articles(current_app.extensions["db"], g.body)
    return _json({"status": "success", "imported": count})


@bp.get("/audit")
@policy(scope="audit", metered=True, query=AuditQuery)
def audit() -> Response:
    params = g.params
    key = g.api_key
    # A client's audit key sees its own user's keys; only an admin key sees every row.
    owner = None if auth.ADMIN_SCOPE in key["scopes"] else key["user_id"]
    db = current_app.extensions["db"]
    with db.cursor() as cur:
        rows = audit_logs.list_masked(
            cur,
            owner_user_id=owner,
            before_id=params["cursor"],
            endpoint=params["endpoint"],
            status=params["status"],
            since=params["since"],
            limit=params["limit"] + 1,
        )
    has_more = len(rows) > params["limit"]
    rows = rows[: params["limit"]]
    next_cursor = encode_cursor(rows[-1]["id"]) if has_more else None
    body = {"status": "success", "data": audit_rows_out.dump(rows), "next_cursor": next_cursor}
    return _json(body)


@bp.get("/usage")
@policy(scope=None, metered=False)
def usage() -> Response:
    ctx = g._get_current_object()
    key = ctx.api_key
    state = metering.usage(key, quota.utc_now())
    ctx.quota = state
    body = {"status": "success", "key": mask_key(key["key_prefix"]), **state.as_usage()}
    return _json(body)


# Built once: json.dumps() with options builds a new encoder on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@functools.cache
def _schema(cls: type[Schema]) -> Schema:
    """One instance per query schema: building a marshmallow Schema deep-copies its fields, and
    loading with an instance keeps no state."""
    return cls()


# Validated query strings, by schema and raw query string: validation is a pure function of the
# two (no clock, no settings), and clients repeat the same few queries. A bad query raises and is
# never kept; the cache is emptied when full, so it stays small whatever clients send.
_VALID_QUERIES: dict[tuple[type[Schema], bytes], dict] = {}
_VALID_QUERIES_MAX = 512


def _valid_query(cls: type[Schema], req: Request) -> dict:
    key = (cls, req.query_string)
    params = _VALID_QUERIES.get(key)
    if params is None:
        params = load_query(_schema(cls), req.args)
        if len(_VALID_QUERIES) >= _VALID_QUERIES_MAX:
            _VALID_QUERIES.clear()
        _VALID_QUERIES[key] = params
    return dict(params)  # values are immutable (int, str, datetime, None); the dict is the caller's


def _json(body: dict) -> Response:
    # Flask's Response is the app's response_class (the factory sets no other).
    return Response(_JSON.encode(body), mimetype="application/json")
