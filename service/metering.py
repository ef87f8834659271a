"""Metering: which requests cost a unit of the daily quota, decided and recorded in one place.

The rule, in the same words in docs/api.md, README.md and docs/email.md (RULE below; a test holds
the documents to it):

* Everything that needs no database runs before metering: the query string, and for an import
  the body's framing, type, size, JSON and every record. A request refused there, or refused by
  authentication, scope or the quota itself, costs nothing.
* `charge()` is the one atomic UPDATE of `repositories.api_keys.CONSUME_QUOTA` (quota.py explains
  the window); its affected-row count is the decision.
* If the service then fails on its side (a 5xx: an error, the database gone or busy), `refund()`
  gives the unit back with a compensating UPDATE, on the day it was charged only, never below 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app, g

from service import auth, quota
from service.db import CONNECTION_ERRORS, Database, DatabaseBusy, DatabaseUnavailable
from service.errors import ApiError, ErrorCode
from service.repositories import api_keys

log = logging.getLogger("service.metering")

RULE = (
    "A request costs one unit of the daily quota only when the service did the work: "
    "requests refused for any reason (a bad parameter or body, a missing or wrong key, a missing "
    "scope, an exhausted quota) cost nothing, and if the service fails on its side (a 5xx "
    "answer), the unit is given back."
)


@dataclass
class Charge:
    """The unit a request took: what a refund needs."""

    key_id: int
    day: date
    key_hash: str | None = None
    refunded: bool = False


def shown_limit(key: dict) -> int:
    # A limit of 0 or less admits nothing; headers and /api/usage show it as 0.
    return max(0, key["rate_limit"])


def usage(key: dict, now: datetime) -> quota.QuotaState:
    """What the key's stored row means now (unmetered routes: /api/usage)."""
    used = quota.used_today(key["calls_made"], key["last_reset"], quota.utc_day(now))
    return quota.QuotaState(limit=shown_limit(key), used=used, now=now)


def charge(db: Database, key: dict, now: datetime, scope: str | None = None) -> quota.QuotaState:
    """Take one unit of today's quota for `key` on a route needing `scope`, or raise the 429.
    Sets `g.quota` (and `g.charge` when a unit was taken)."""
    today = quota.utc_day(now)
    ctx = g._get_current_object()  # one context lookup, not one per attribute
    cache = current_app._get_current_object().extensions["key_cache"]
    key_hash, cached = ctx.get("key_hash"), ctx.get("key_cached", False)
    admitted, used = False, None
    # A key the row already shows spent for today is refused without the UPDATE: counts only
    # grow within a day, so the UPDATE would refuse it too (the decision is the row's, read an
    # instant earlier, or up to KEY_CACHE_SECONDS earlier from the cache: service/key_cache.py).
    # Every admission is the UPDATE's.
    if not quota.spent(key["calls_made"], key["last_reset"], key["rate_limit"], today):
        admitted, used = _consume(db, key, today, scope, cached=cached)
        if not admitted and cached:
            # The UPDATE refused what the cached row allowed: the row is stale (spent by other
            # workers, revoked, ...), or the kept connection was found dead. The stored row,
            # read as any uncached one (on a new connection if need be), decides and says why.
            cache.drop(key_hash)
            key = db.read(lambda cur: auth.lookup(cur, key_hash))
            cache.put(key_hash, key)
            ctx.api_key = key
            auth.check_usable(key, today)
            auth.require_scope(key, scope)
            if not quota.spent(key["calls_made"], key["last_reset"], key["rate_limit"], today):
                admitted, used = _consume(db, key, today, scope)
    limit = shown_limit(key)
    if admitted:
        cache.admitted(key_hash, used, today)
        ctx.charge = Charge(key["id"], today, key_hash)
        ctx.quota = quota.QuotaState(limit=limit, used=used, now=now)
        return ctx.quota
    # Refused: the count is at (or, after a lowered limit, above) the limit for today.
    used = max(limit, quota.used_today(key["calls_made"], key["last_reset"], today))
    state = quota.QuotaState(limit=limit, used=used, now=now)
    ctx.quota = state
    raise ApiError(
        429,
        ErrorCode.QUOTA_EXCEEDED,
        quota.refusal_message(state),
        headers={"Retry-After": str(state.retry_after())},
        extra={"reset_at": quota.rfc3339(state.reset_at), "limit": state.limit},
    )


def _consume(
    db: Database, key: dict, today: date, scope: str | None, *, cached: bool = False
) -> tuple[bool, int | None]:
    """The quota UPDATE. With a cached row it is the request's first statement, so it also meets
    a kept connection that died (a restart, a lost Galera node): that counts as a refusal here,
    and the caller reads the row again, which reconnects, as an uncached request's read does."""
    try:
        return db.retrying(
            lambda cur: api_keys.consume_quota(cur, key["id"], today, scope), atomic=False
        )
    except DatabaseUnavailable:
        if not cached:
            raise
        return False, None


def refund(db: Database) -> bool:
    """Give back this request's unit, if it took one and has not given it back yet. Best effort:
    when the database cannot be asked, the unit stays spent and the loss is logged."""
    taken: Charge | None = g.get("charge")
    if taken is None or taken.refunded:
        return False
    taken.refunded = True
    try:
        given_back = db.retrying(
            lambda cur: api_keys.refund_quota(cur, taken.key_id, taken.day), atomic=False
        )
    except (DatabaseUnavailable, DatabaseBusy, *CONNECTION_ERRORS) as exc:
        log.warning(
            "quota unit not given back: %s",
            type(exc).__name__,
            extra={"event": "quota_refund_failed", "key_id": taken.key_id},
        )
        return False
    if given_back and taken.key_hash is not None:
        # The cached row counted the unit: read the key afresh next time.
        current_app.extensions["key_cache"].drop(taken.key_hash)
    state = g.get("quota")
    if given_back and state is not None:
        g.quota = quota.QuotaState(limit=state.limit, used=max(0, state.used - 1), now=state.now)
    return given_back


def refund_if_failed(db: Database, status: int) -> None:
    """The after-request half of the rule: a 5xx after charging gives the unit back."""
    if status >= 500:
        refund(db)
