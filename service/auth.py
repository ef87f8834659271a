"""Who is calling: the key from `X-API-Key` or `Authorization: Bearer`, looked up by its hash.

401: no key, an unknown key, an expired key. 403: a disabled/revoked key (or its user is
inactive), or a key without the route's scope. A presented value that matches no key is never
logged, stored or echoed: not even its prefix.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import current_app, g, request

from service.errors import ApiError, ErrorCode
from service.keys import MAX_PRESENTED_LENGTH, hash_key
from service.repositories import api_keys

ADMIN_SCOPE = "admin"


# HTTP's optional whitespace only: str.strip() would also remove Unicode spaces, and a key
# followed by a no-break space is not the key.
_OWS = " \t"


def presented_key(environ: dict) -> str | None:
    # Read from the WSGI environ, as request.headers reads it, without its name mapping.
    value = environ.get("HTTP_X_API_KEY", "").strip(_OWS)
    if value:
        return value
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip(_OWS).partition(" ")
    if scheme.lower() == "bearer" and token.strip(_OWS):
        return token.strip(_OWS)
    return None


def presented_hash(environ: dict, settings) -> str | None:
    """The hash of the presented key; None for a value that cannot be a key (no query needed to
    refuse it). A 401 when no key is presented."""
    key = presented_key(environ)
    if key is None:
        raise ApiError(
            401,
            ErrorCode.MISSING_KEY,
            "Send your API key in the X-API-Key header or as 'Authorization: Bearer <key>'.",
        )
    # Anything longer than a key, or not printable ASCII, cannot be one: refuse without a query.
    if len(key) <= MAX_PRESENTED_LENGTH and key.isascii() and key.isprintable():
        return hash_key(key, settings.KEY_HASH_SECRET)
    return None


def lookup(cur, key_hash: str | None) -> dict:
    """The row of the key with this hash (one indexed SELECT), or a 401."""
    row = None if key_hash is None else api_keys.find_by_hash(cur, key_hash)
    if row is None and key_hash is not None:
        row = _under_previous_secret(cur, key_hash)
    if row is None:
        raise ApiError(401, ErrorCode.INVALID_KEY, "The API key is not valid.")
    return row


def _under_previous_secret(cur, current_hash: str) -> dict | None:
    """During a KEY_HASH_SECRET rotation, a key still stored under KEY_HASH_SECRET_PREVIOUS is
    found with that one and rehashed on the spot under the current secret."""
    previous_secret = current_app.config["SETTINGS"].KEY_HASH_SECRET_PREVIOUS
    key = presented_key(request.environ)
    if not previous_secret or key is None:
        return None
    previous = hash_key(key, previous_secret)
    row = api_keys.find_by_hash(cur, previous)
    if row is not None:
        api_keys.rehash(cur, row["id"], previous, current_hash)
    return row


def authenticate(db, now: datetime) -> dict:
    """The usable key row of the presented key, or the 401/403 that says why not; an address over
    the limit of failed authentications gets a 429 (service/auth_throttle.py). The row comes from
    the worker's key cache when it holds it (service/key_cache.py), else from one read."""
    # Each of Flask's proxies read once: every attribute read through one is a context lookup
    # (and, on Python 3.11, an AttributeError formatted and dropped).
    req, app = request._get_current_object(), current_app._get_current_object()
    # 401 missing_key before anything else: no key is no guess.
    key_hash = presented_hash(req.environ, app.config["SETTINGS"])
    address = req.remote_addr or ""
    extensions = app.extensions
    limiter = extensions["auth_limiter"]
    limiter.check(address, now)
    cache = extensions["key_cache"]
    key = cache.get(key_hash) if key_hash is not None else None
    ctx = g._get_current_object()  # one context lookup, not one per attribute
    ctx.key_hash, ctx.key_cached = key_hash, key is not None
    if key is None:
        try:
            key = db.read(lambda cur: lookup(cur, key_hash))
        except ApiError as exc:
            if exc.code is ErrorCode.INVALID_KEY:
                limiter.failed(db, address, now)
            raise
        cache.put(key_hash, key)
    # Known before it is judged: an expired or disabled key's refusal is audited under its prefix.
    ctx.api_key = key
    check_usable(key, now.astimezone(UTC).date())
    return key


def check_usable(row: dict, today: date) -> None:
    """Expired keys are 401; disabled or revoked keys, or keys of inactive users, 403."""
    if row["expires_at"] is not None and row["expires_at"] < today:
        raise ApiError(
            401, ErrorCode.KEY_EXPIRED, f"The API key expired on {row['expires_at'].isoformat()}."
        )
    if not row["is_valid"] or row["revoked_at"] is not None or row["user_active"] == 0:
        raise ApiError(403, ErrorCode.KEY_DISABLED, "The API key has been disabled.")


def require_scope(key: dict, scope: str | None) -> None:
    if scope is None or scope in key["scopes"] or ADMIN_SCOPE in key["scopes"]:
        return
    raise ApiError(
        403, ErrorCode.INSUFFICIENT_SCOPE, f"The API key lacks the '{scope}' scope for this route."
    )
