"""The masking rule of TICKET-002, in one place.

A key is shown, anywhere outside the request that presented it, as its first 6 characters followed
by `...` (`key_AB...`). The database view `masked_audit_logs` applies the same rule in SQL
(`CONCAT(LEFT(key_prefix, 6), '...')`, sql/migrations/0004_masked_audit_logs.sql); logs carry only
the bare 6-character prefix.
"""

from __future__ import annotations

from service.keys import PREFIX_LENGTH

MASK_SUFFIX = "..."


def mask_key(key_or_prefix: str | None) -> str | None:
    if not key_or_prefix:
        return None
    return key_or_prefix[:PREFIX_LENGTH] + MASK_SUFFIX
