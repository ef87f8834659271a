"""The masking of key-shaped text that must be echoed or logged (service/masking.redact_keys)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.gunicorn_worker import client_error_status, error_page
from service.keys import PREFIX_LENGTH
from service.logging_setup import JsonFormatter, KeyMaskingFormatter
from service.masking import _KEY_SHAPED, MASK_SUFFIX, redact_keys

NEW = "wk_" + "aB3" * 10 + "xY"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NEW, "wk_aB3..."),
        (f"GET /api/export?api_key={NEW} HTTP/1.1", "GET /api/export?api_key=wk_aB3... HTTP/1.1"),
        ("key_ABC123", "key_AB..."),
        ("Xkey_DEF456Y", "Xkey_DE..."),
        (f"'{NEW[:20]}'", "'wk_aB3...'"),  # a cut key is still key-shaped
        ("key_prefix key_id wk_ ok", "key_prefix key_id wk_ ok"),
        ("wk_abc", "wk_abc"),  # six characters: a prefix, shown as it is
    ],
)
def test_key_shaped_tokens_are_cut_to_their_prefix(text, expected):
    assert redact_keys(text) == expected


def test_no_output_of_the_formatters_holds_more_than_six_characters_of_a_key():
    try:
        raise ValueError(f"Invalid HTTP request line: 'GET /?k={NEW}'")
    except ValueError as exc:
        record = logging.LogRecord(
            "gunicorn.error",
            logging.ERROR,
            __file__,
            1,
            "Error handling request %s",
            (f"/api/export?{NEW}=1",),
            (type(exc), exc, exc.__traceback__),
        )
    for formatter in (KeyMaskingFormatter("%(message)s"), JsonFormatter()):
        line = formatter.format(record)
        assert NEW[:7] not in line and "wk_aB3..." in line


def test_the_workers_error_page_is_json_and_quotes_nothing():
    from gunicorn.http.errors import InvalidRequestLine, LimitRequestLine

    assert client_error_status(InvalidRequestLine(f"GET /?{NEW}")) == (400, "Bad Request")
    assert client_error_status(LimitRequestLine(9000, 8190)) == (414, "URI Too Long")
    assert client_error_status(RuntimeError("bug")) is None
    page = error_page(400, "Bad Request", "InvalidRequestLine")
    assert page.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert page.endswith(
        b'{"error":{"code":"bad_request","message":"The request is not valid '
        b'HTTP (InvalidRequestLine)."}}'
    )


# redact_keys() skips the substitution when neither alternative's start occurs: the result is
# always exactly the substitution's, on text built from key-shaped and nearly key-shaped pieces.
PIECES = ["wk_", "key_", "wk_aB3x", "key_A1b", "key_a1b", "wk_ab", "KEY_AB12", "w", "k", "_", "x"]


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from(PIECES)
        | st.text(st.sampled_from("wkey_AZaz09 \"'é😀"), max_size=6)
        | st.text(max_size=4),
        max_size=12,
    ).map("".join)
)
def test_the_quick_check_never_changes_what_redaction_gives(text):
    assert redact_keys(text) == _KEY_SHAPED.sub(
        lambda m: m.group()[:PREFIX_LENGTH] + MASK_SUFFIX, text
    )
