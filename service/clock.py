"""The one UTC clock and the one RFC 3339 formatter of the service.

`utc_now()` is aware (UTC), so nothing depends on the host's TZ and freezegun can move it. Every
instant the service shows goes through `rfc3339()`, always with `Z`; each field has one fixed
precision: milliseconds for measured instants (audit timestamps, log lines), whole seconds for
instants that are whole seconds by definition (the quota window's bounds, article dates stored
as DATETIME).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


@functools.lru_cache(maxsize=256)  # the same few instants (quota bounds) recur all day
def rfc3339(moment: datetime, *, milliseconds: bool = False) -> str:
    """`2026-12-02T04:35:35.054Z` (milliseconds) or `2026-12-02T00:00:00Z`. A naive datetime
    is taken as UTC (DATETIME columns hold UTC without a zone)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds" if milliseconds else "seconds") + "Z"
