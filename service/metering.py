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

from flask import g

from service import quota
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
    refunded: bool = False


def shown_limit(key: dict) -> int:
    # A limit of 0 or less admits nothing; headers and /api/usage show it as 0.
    return max(0, key["rate_limit"])


def usage(key: dict, now: datetime) -> quota.QuotaState:
    """What the key's stored row means now (unmetered routes: /api/usage)."""
    used = quota.used_today(key["calls_made"], key["last_reset"], quota.utc_day(now))
    return quota.QuotaState(limit=shown_limit(key), used=used, now=now)


def charge(db: Database, key: dict, now: datetime) -> quota.QuotaState:
    """Take one unit of today's quota for `key`, or raise the 429. Sets `g.quota`."""
    today = quota.utc_day(now)
    limit = shown_limit(key)
    admitted, used = False, None
    # A key the authentication read already shows spent for today is refused without the UPDATE:
    # counts only grow within a day, so the UPDATE would refuse it too. Every admission is the
    # UPDATE's.
    if not quota.spent(key["calls_made"], key["last_reset"], key["rate_limit"], today):
        admitted, used = db.retrying(
            lambda cur: api_keys.consume_quota(cur, key["id"], today), atomic=False
        )
    if admitted:
        g.charge = Charge(key["id"], today)
        g.quota = quota.QuotaState(limit=limit, used=used, now=now)
        return g.quota
    # Refused: the count is at (or, after a lowered limit, above) the limit for today.
    used = max(limit, quota.used_today(key["calls_made"], key["last_reset"], today))
    state = quota.QuotaState(limit=limit, used=used, now=now)
    g.quota = state
    raise ApiError(
        429,
        ErrorCode.QUOTA_EXCEEDED,
        quota.refusal_message(state),
        headers={"Retry-After": str(state.retry_after())},
        extra={"reset_at": quota.rfc3339(state.reset_at), "limit": state.limit},
    )


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
    state = g.get("quota")
    if given_back and state is not None:
        g.quota = quota.QuotaState(limit=state.limit, used=max(0, state.used - 1), now=state.now)
    return given_back


def refund_if_failed(db: Database, status: int) -> None:
    """The after-request half of the rule: a 5xx after charging gives the unit back."""
    if status >= 500:
        refund(db)
