"""The request log line without a LogRecord (`logging_setup.FieldsLog`): the same bytes as
`logger.info(message, extra=fields)` through the service's JSON handler, and `logging` itself
whenever anything else would see the line."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from service.logging_setup import _STANDARD, FieldsLog, JsonFormatter

NAME = "tests.fields_log"


def json_handler(stream: io.StringIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler._wme = True  # what configure_logging marks its handler with
    return handler


@contextlib.contextmanager
def isolated_logger() -> Iterator[logging.Logger]:
    found = logging.getLogger(NAME)
    found.propagate, found.level = False, logging.INFO
    yield found
    found.handlers.clear()
    found.filters.clear()
    found.propagate, found.level, found.disabled = True, logging.NOTSET, False


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    with isolated_logger() as found:
        yield found


def both_ways(logger: logging.Logger, fields: dict) -> tuple[str, str]:
    """The text the handler got from FieldsLog, and from logging, at the same frozen instant."""
    texts = []
    for write in (
        lambda: FieldsLog(NAME).info("request", fields),
        lambda: logger.info("request", extra=fields),
    ):
        stream = io.StringIO()
        logger.handlers[:] = [json_handler(stream)]
        write()
        texts.append(stream.getvalue())
    return texts[0], texts[1]


field_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda name: name not in _STANDARD
)
field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(st.characters(codec="utf-8")),
    # Key-shaped text is cut to its prefix on both ways.
    st.from_regex(r"\A(?:wk_|key_A)[A-Za-z0-9]{0,40}\Z"),
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(field_names, field_values, max_size=14),
    moment=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
)
def test_the_line_is_what_logging_writes(fields, moment):
    with isolated_logger() as logger, freeze_time(datetime.fromtimestamp(moment, UTC)):
        direct, through_logging = both_ways(logger, fields)
    assert direct == through_logging
    assert direct.endswith("\n") and direct.count("\n") == 1


def test_the_request_line_of_a_refusal_is_what_logging_writes(logger):
    fields = {
        "event": "request",
        "request_id": "0123456789abcdef0123456789abcdef",
        "method": "GET",
        "path": "/api/export",
        "status": 429,
        "latency_ms": 1,
        "key_prefix": "wk_AbC",
        "error_code": "quota_exceeded",
        "remote_addr": "wk_AbCdEfGh pasted as an address",
        "quota_used": 5,
        "quota_limit": 5,
        "quota_reset_at": "2026-12-03T00:00:00Z",
    }
    with freeze_time("2026-12-02T19:29:01.7036Z"):
        direct, through_logging = both_ways(logger, fields)
    assert direct == through_logging
    assert direct.startswith('{"ts": "2026-12-02T19:29:01.703Z", "level": "INFO", "logger": ')
    assert '"remote_addr": "wk_AbC... pasted as an address"' in direct


def test_another_handler_on_the_way_gets_the_record_and_the_line_is_written_once(logger, caplog):
    stream = io.StringIO()
    logger.handlers[:] = [json_handler(stream), caplog.handler]
    FieldsLog(NAME).info("request", {"status": 200})
    assert [(r.name, r.getMessage(), r.status) for r in caplog.records] == [(NAME, "request", 200)]
    assert stream.getvalue().count("\n") == 1 and '"status": 200' in stream.getvalue()


def test_a_filter_on_the_logger_still_decides(logger):
    stream = io.StringIO()
    logger.handlers[:] = [json_handler(stream)]
    logger.addFilter(lambda record: record.status != 429)
    log = FieldsLog(NAME)
    log.info("request", {"status": 429})
    log.info("request", {"status": 200})
    assert stream.getvalue().count("\n") == 1 and '"status": 200' in stream.getvalue()


def test_the_level_and_a_disabled_logger_are_honoured(logger):
    stream = io.StringIO()
    logger.handlers[:] = [json_handler(stream)]
    quiet = json_handler(io.StringIO())
    quiet.setLevel(logging.WARNING)
    logger.handlers.append(quiet)  # a handler above INFO is passed over, as logging does
    log = FieldsLog(NAME)
    log.info("request", {"n": 1})
    logger.setLevel(logging.WARNING)
    log.info("request", {"n": 2})
    logger.setLevel(logging.INFO)
    logger.disabled = True
    log.info("request", {"n": 3})
    assert stream.getvalue().count("\n") == 1 and '"n": 1' in stream.getvalue()
    assert quiet.stream.getvalue() == ""


def test_a_stream_that_fails_is_reported_as_logging_reports_it(logger, monkeypatch):
    class Broken(io.StringIO):
        def write(self, text):
            raise OSError("disk full")

    handler = json_handler(Broken())
    reported = []
    monkeypatch.setattr(handler, "handleError", lambda record: reported.append(record.msg))
    logger.handlers[:] = [handler]
    FieldsLog(NAME).info("request", {"status": 200})  # never raises into the request
    assert reported == ["request"]
