"""The daily quota rule of TICKET-001: windows, headers and the decision. Pure, no I/O.

* The window is the UTC calendar day. "Today" is computed here, in Python, from an aware UTC clock
  (so it is independent of the host's TZ, and freezegun can move it) and passed into SQL.
* Consuming a unit is ONE atomic UPDATE (`repositories.api_keys.consume_quota`): it resets the count
  when the stored day is before today, increments it otherwise, and admits the request only if the
  stored day is before today or the count is under the limit. The affected-row count is the
  decision; no SELECT-then-write, so concurrent requests can never pass the limit.
* A key that the authentication read (or the worker's cached row, service/key_cache.py) already
  shows spent for today is refused without the UPDATE (`spent()`): a count only grows within its
  day, so the UPDATE would refuse it as well. Only refusals are decided that way; every admission
  is the UPDATE's, which also re-checks that the key is still usable.
* The stored day never moves backwards: an instance whose clock lags behind another one's near
  midnight counts against the newer day instead of rewinding it.
* Nothing runs at midnight: a key spent yesterday is simply free on its next request today.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from service.clock import rfc3339, utc_day, utc_now  # noqa: F401 - the one clock, re-exported

DAY_SECONDS = 86_400
POLICY_NAME = "daily"
# Spread returning clients over up to this many seconds after the reset (Retry-After only).
RETRY_JITTER_SECONDS = 30


def window_start(now: datetime) -> datetime:
    return datetime.combine(utc_day(now), time.min, tzinfo=UTC)


def next_reset(now: datetime) -> datetime:
    return window_start(now) + timedelta(days=1)


@dataclass(frozen=True)
class QuotaState:
    """A key's quota as seen by one request, after its decision."""

    limit: int
    used: int
    now: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @functools.cached_property  # read up to 7 times per request (headers, body, log)
    def reset_at(self) -> datetime:
        return next_reset(self.now)

    @property
    def seconds_to_reset(self) -> int:
        return max(1, math.ceil((self.reset_at - self.now).total_seconds()))

    def headers(self) -> dict[str, str]:
        """X-RateLimit-* (de facto) and the IETF draft-ietf-httpapi-ratelimit-headers fields."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Used": str(self.used),
            "X-RateLimit-Reset": str(int(self.reset_at.timestamp())),
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w={DAY_SECONDS}',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.seconds_to_reset}',
        }

    def retry_after(self, jitter: int | None = None) -> int:
        if jitter is None:
            jitter = random.randint(0, RETRY_JITTER_SECONDS)
        return self.seconds_to_reset + jitter

    def as_usage(self) -> dict[str, object]:
        return {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "window": "UTC calendar day",
            "window_start": rfc3339(window_start(self.now)),
            "reset_at": rfc3339(self.reset_at),
            "reset_in_seconds": self.seconds_to_reset,
        }


def used_today(calls_made: int, last_reset: date | None, today: date) -> int:
    """What a stored counter means today: counts from an earlier day are spent history."""
    if last_reset is None or last_reset < today:
        return 0
    return calls_made


def spent(calls_made: int, last_reset: date | None, limit: int, today: date) -> bool:
    """True when a key's stored count refuses a request today: exactly the negation of the
    admission condition of `repositories.api_keys.CONSUME_QUOTA`. A limit of 0 or less admits
    nothing, ever."""
    return limit <= 0 or (last_reset is not None and last_reset >= today and calls_made >= limit)


def refusal_message(state: QuotaState) -> str:
    return (
        f"Daily quota of {state.limit} requests is used up. It resets at 00:00 UTC, "
        f"{rfc3339(state.reset_at)} (in {state.seconds_to_reset} seconds)."
    )
