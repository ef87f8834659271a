"""API key format, the keyed hash, and the display prefix. Pure functions, no I/O.

A key is only ever stored as its keyed hash (the lookup index) and its first 6 characters (the
display prefix). The hash is HMAC-SHA-256 under `KEY_HASH_SECRET`, a secret the operator keeps
outside the database: a stolen copy of the database alone cannot be used to test guesses, not even
for the short legacy keys whose prefix is on show (docs/operations.md, "Key hash secret").

Every hash of a key (service, CLI, migrations, sample data, fixtures, tests, benchmark) is computed
by `hash_key`; SQL files name the hashes they need as `{{key_hash:THE_KEY}}`, filled in by
`render_key_hashes`.

New keys are `wk_` followed by 32 random base62 characters (about 190 bits), so their first six
characters (`wk_` and three random ones) still tell keys apart in lists and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

KEY_MARKER = "wk_"
PREFIX_LENGTH = 6
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_CHARS = 32
# Longest value we ever hash: anything longer cannot be a key and is refused before hashing.
MAX_PRESENTED_LENGTH = 128
MIN_SECRET_LENGTH = 32
# A key whose hidden part (after the 6 characters shown everywhere) is shorter than this cannot
# hold 128 bits even if every character were random base62: it is "weak" and should be rotated.
STRONG_HIDDEN_CHARS = 22
# The public secret of the sample data ONLY (sql/sample_database.sql is generated with it, so the
# file's hashes can be fixed text). Anyone can read it here: it protects nothing, the migration
# refuses to hash real keys with it, and the service warns at every start when it is set.
SAMPLE_KEY_HASH_SECRET = "sample-data-only-this-secret-is-public-never-use-it-in-production"  # noqa: S105
_PLACEHOLDER = re.compile(r"\{\{key_hash:([!-z|~]+?)\}\}")


def generate_key() -> str:
    return KEY_MARKER + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))


def generate_secret() -> str:
    return secrets.token_urlsafe(48)


def hash_key(key: str, secret: str) -> str:
    """The stored form of a key: HMAC-SHA-256 under the operator's secret, 64 hex characters."""
    if not secret:
        raise ValueError("a key hash needs KEY_HASH_SECRET")
    return hmac.new(secret.encode("utf-8"), key.encode("utf-8"), hashlib.sha256).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def is_weak(key: str) -> bool:
    return len(key) - PREFIX_LENGTH < STRONG_HIDDEN_CHARS


def render_key_hashes(sql_text: str, secret: str) -> str:
    """`{{key_hash:key_ABC123}}` in an SQL file becomes the quoted hash of `key_ABC123`."""
    return _PLACEHOLDER.sub(lambda m: "'" + hash_key(m[1], secret) + "'", sql_text)
