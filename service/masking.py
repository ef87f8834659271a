"""The masking rule of TICKET-002, in one place.

A key is shown, anywhere outside the request that presented it, as its first 6 characters followed
by `...` (`key_AB...`). The database view `masked_audit_logs` applies the same rule in SQL
(`CONCAT(LEFT(key_prefix, 6), '...')`, sql/migrations/0004_masked_audit_logs.sql); logs carry only
the bare 6-character prefix.
"""

from __future__ import annotations

import re

from service.keys import PREFIX_LENGTH

MASK_SUFFIX = "..."

# Anything shaped like one of our keys, whole or cut, longer than the prefix: `wk_` + base62 (new
# keys) and `key_` + an upper-case letter or digit then letters and digits (legacy keys such as
# key_ABC123; a lower-case start is left alone so that names like key_prefix stay readable). No
# word boundary on purpose: a key glued to other text (`api_key=wk_...`) is still a key.
_KEY_SHAPED = re.compile(r"(?:wk_[A-Za-z0-9]{4,}|key_[A-Z0-9][A-Za-z0-9]{2,})")


def mask_key(key_or_prefix: str | None) -> str | None:
    if not key_or_prefix:
        return None
    return key_or_prefix[:PREFIX_LENGTH] + MASK_SUFFIX


# The start of each of its two alternatives, each beginning with a literal: the regex engine
# finds a literal with a fast scan, but tries an alternation at every position. Text in which
# neither start occurs holds nothing _KEY_SHAPED can match (every log line is checked: most hold
# no key-shaped text, though each new key's 6-character prefix starts with `wk_`).
_NEW_KEY_START = re.compile(r"wk_[A-Za-z0-9]{4}")
_LEGACY_KEY_START = re.compile(r"key_[A-Z0-9][A-Za-z0-9]{2}")


def redact_keys(text: str) -> str:
    """`text` with every key-shaped token cut to its 6-character prefix and `...`: for client
    text that must be echoed or logged (parameter and field names, malformed request lines)."""
    if _NEW_KEY_START.search(text) is None and _LEGACY_KEY_START.search(text) is None:
        return text
    return _KEY_SHAPED.sub(lambda m: m.group()[:PREFIX_LENGTH] + MASK_SUFFIX, text)
