"""Keeping the API key out of every output.

Only the key's first six characters are public (they name a key in the service's audit trail), so
anything holding more than six consecutive characters of it, in any case, is a leak: a server that
echoes the key with a character added, lower-cased, or inside a longer token. Such a token is
replaced as a whole by REDACTED.
"""

import re
from typing import Any

REDACTED = "[REDACTED]"
PUBLIC_PREFIX = 6  # characters of a key that may be shown
FRAGMENT = PUBLIC_PREFIX + 1  # any run this long taken from the key is a leak
EXCERPT_CHARS = 80

# A token: a run of characters that are not whitespace, quotes, brackets or separators. A key is
# made of letters, digits, "_" and "-", so an echoed key always sits inside one token.
_TOKEN = re.compile(r"[^\s\"'`<>()\[\]{},;\\]+")


def _fold(text: str) -> str:
    """Lower case, character by character, so indexes in the result are indexes in the text."""
    return "".join(low if len(low := c.lower()) == 1 else c for c in text)


def key_fragments(secret: str) -> frozenset[str]:
    """Every FRAGMENT-long run of the key, case-folded; a shorter key is its own fragment."""
    folded = _fold(secret)
    if len(folded) <= FRAGMENT:
        return frozenset({folded}) if folded else frozenset()
    return frozenset(folded[i : i + FRAGMENT] for i in range(len(folded) - FRAGMENT + 1))


def _holds_fragment(text: str, fragments: frozenset[str]) -> bool:
    folded = _fold(text)
    return any(fragment in folded for fragment in fragments)


def _redact_spans(text: str, fragments: frozenset[str]) -> str:
    """Replace every stretch of text covered by an occurrence of a fragment (one pass, so the
    marker itself is never rescanned)."""
    folded = _fold(text)
    covered = [False] * len(text)
    for fragment in fragments:
        start = folded.find(fragment)
        while start != -1:
            covered[start : start + len(fragment)] = [True] * len(fragment)
            start = folded.find(fragment, start + 1)
    out: list[str] = []
    for i, char in enumerate(text):
        if not covered[i]:
            out.append(char)
        elif i == 0 or not covered[i - 1]:
            out.append(REDACTED)
    return "".join(out)


def scrub(text: str, secret: str) -> str:
    """Replace every token of untrusted text that holds more than six characters of the key."""
    if not secret or not text:
        return text
    fragments = key_fragments(secret)
    if not _holds_fragment(text, fragments):
        return text
    text = _TOKEN.sub(
        lambda m: REDACTED if _holds_fragment(m.group(0), fragments) else m.group(0), text
    )
    # A key holding one of the separators spans tokens: cut what is left of it.
    return _redact_spans(text, fragments) if _holds_fragment(text, fragments) else text


def excerpt(body: bytes, secret: str, limit: int = EXCERPT_CHARS) -> str:
    """A short single-line excerpt of a body, scrubbed before truncation so a key cut at the
    boundary cannot leak a part of it."""
    text = scrub(body.decode("utf-8", "replace"), secret)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def guards_whole_outputs(secret: str) -> bool:
    # Whole outputs (report, console, JUnit, Prometheus) are scrubbed again as a last line of
    # defence, for keys longer than the public prefix: a shorter "key" could match ordinary words,
    # and is still scrubbed wherever text comes from the server or an exception.
    return len(secret) > PUBLIC_PREFIX


def scrub_output(text: str, secret: str) -> str:
    """Last line of defence for a whole text output."""
    return scrub(text, secret) if guards_whole_outputs(secret) else text


def scrub_tree(value: Any, secret: str) -> Any:
    """The same for a JSON-like structure: every string in it (keys included), so a redaction can
    never break the JSON around it."""
    if not guards_whole_outputs(secret):
        return value
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, dict):
        return {scrub_tree(k, secret): scrub_tree(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_tree(v, secret) for v in value]
    return value
