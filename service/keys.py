"""API key format, hashing and display prefix. Pure functions, no I/O.

A key is only ever stored as its SHA-256 hash (the lookup index) and its first 6 characters (the
display prefix). New keys are `wk_` followed by 32 random base62 characters (about 190 bits), so
their first six characters (`wk_` and three random ones) still tell keys apart in lists and logs.
"""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_MARKER = "wk_"
PREFIX_LENGTH = 6
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_CHARS = 32
# Longest value we ever hash: anything longer cannot be a key and is refused before hashing.
MAX_PRESENTED_LENGTH = 128


def generate_key() -> str:
    return KEY_MARKER + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]
