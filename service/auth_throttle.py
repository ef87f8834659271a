"""Failed authentications limited per client address: guessing keys is slowed, keys never locked.

* A failed authentication is a presented key that matches no key (401 `invalid_key`). Each is
  counted in the database, per client address (the real one: `request.remote_addr`, which
  ProxyFix sets from X-Forwarded-For through TRUSTED_PROXIES only) and per UTC minute, by one
  atomic statement, so every worker and instance shares the count.
* Over AUTH_FAILURES_PER_MINUTE, the answer is 429 `too_many_failed_authentications` with
  Retry-After (the seconds left in the minute), and every request from that address that
  presents a key is refused before its key is looked up, until the minute ends: otherwise a right
  guess would still answer 200 and the limit would slow nothing. A worker learns that an address
  is over the limit from the shared count, on its next failure from it.
* No key is ever locked: the limit is on addresses, and a client at any other address, with the
  same key or another, is never affected by someone else's failures.
* GDPR: no address is stored. A row holds an HMAC-SHA-256 of the address keyed with a random salt
  of its minute; the salt and the counts are deleted once the minute has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
from datetime import datetime, timedelta

from service.db import Database
from service.errors import ApiError, ErrorCode
from service.repositories import auth_failures

WINDOW = timedelta(minutes=1)


def window_of(now: datetime) -> datetime:
    """The UTC minute `now` falls in, naive (as DATETIME columns hold it)."""
    return now.replace(second=0, microsecond=0, tzinfo=None)


def too_many(now: datetime) -> ApiError:
    wait = max(1, math.ceil((window_of(now) + WINDOW - now.replace(tzinfo=None)).total_seconds()))
    return ApiError(
        429,
        ErrorCode.TOO_MANY_FAILED_AUTHENTICATIONS,
        f"Too many failed authentications from your address. Retry in {wait} seconds.",
        headers={"Retry-After": str(wait)},
    )


class FailedAuthLimiter:
    """Per worker: the salt of the current minute and the addresses it knows are over the
    limit (both forgotten when the minute changes). The counts themselves are in the database."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._window: datetime | None = None
        self._salt: bytes | None = None
        self._blocked: set[bytes] = set()

    def _roll(self, window: datetime) -> None:
        if self._window != window:
            self._window, self._salt, self._blocked = window, None, set()

    def _key(self, salt: bytes, address: str) -> bytes:
        return hmac.new(salt, address.encode("utf-8", "replace"), hashlib.sha256).digest()

    def check(self, address: str, now: datetime) -> None:
        """Refuse, before any lookup, an address this worker knows is over the limit."""
        if self.limit <= 0:
            return
        with self._lock:
            self._roll(window_of(now))
            if self._salt is not None and self._key(self._salt, address) in self._blocked:
                raise too_many(now)

    def failed(self, db: Database, address: str, now: datetime) -> None:
        """Count a failed authentication; raise the 429 once the address is over the limit."""
        if self.limit <= 0:
            return
        window = window_of(now)
        with self._lock:
            self._roll(window)
            salt = self._salt
        fresh = salt is None

        def count(cur) -> int:
            nonlocal salt
            if salt is None:
                salt = auth_failures.salt_for(cur, window, secrets.token_bytes(16))
                auth_failures.purge_before(cur, window)  # once per worker and minute
            return auth_failures.count_failure(cur, self._key(salt, address), window)

        failures = db.retrying(count, atomic=False)
        client = self._key(salt, address)
        with self._lock:
            self._roll(window)
            if fresh:
                self._salt = salt
            if failures > self.limit:
                self._blocked.add(client)
        if failures > self.limit:
            raise too_many(now)
