"""A per-worker cache of key rows, by key hash, each kept for `KEY_CACHE_SECONDS` (0: off).

It lets the two answers that only READ a key go without a statement: a refusal of a key the
cached row already shows spent for today (429), and `/api/usage`. What it may show stale, for at
most the lifetime, is what changed in the database since the row was read: by another worker's
admissions, or by `keys revoke/update/reset-usage`. Admissions never rest on it: every admission
is the one atomic UPDATE (`repositories.api_keys.CONSUME_QUOTA`), which re-checks on the stored
row everything that can revoke a key (valid, not revoked, not expired, owner active, the route's
scope), so a key revoked, expired or disabled is never admitted from a stale row. "Today" is
always the request's own clock, so a new UTC day frees a cached spent key at once.

Only keys that exist are kept (an unknown key always costs its lookup), and the cache is emptied
when it holds MAX_ENTRIES, so it stays small whatever clients send. Ages are measured on the
monotonic clock (freezegun moves it in tests).
"""

from __future__ import annotations

import time
from datetime import date

MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, lifetime: float):
        self.lifetime = lifetime
        self._rows: dict[str, tuple[float, dict]] = {}

    def get(self, key_hash: str) -> dict | None:
        """A copy of the key's row if it was read less than `lifetime` seconds ago."""
        entry = self._rows.get(key_hash)
        if entry is None:
            return None
        age = time.monotonic() - entry[0]
        if not 0 <= age < self.lifetime:  # a clock that went back (tests) expires it too
            del self._rows[key_hash]
            return None
        return dict(entry[1])

    def put(self, key_hash: str, row: dict) -> None:
        if self.lifetime <= 0:
            return
        if len(self._rows) >= MAX_ENTRIES:
            self._rows.clear()
        self._rows[key_hash] = (time.monotonic(), dict(row))

    def admitted(self, key_hash: str, used: int, today: date) -> None:
        """This worker's own admission: the count the UPDATE gave back, so that the worker that
        spends a key sees it spent without asking again (the row's age is unchanged)."""
        entry = self._rows.get(key_hash)
        if entry is not None:
            row = entry[1]
            row["calls_made"] = used
            stored = row["last_reset"]
            row["last_reset"] = today if stored is None else max(stored, today)

    def drop(self, key_hash: str) -> None:
        self._rows.pop(key_hash, None)
