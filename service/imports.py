"""POST /api/import: a JSON array or NDJSON of articles, all or nothing, upserted by URL.

Two halves, on either side of metering (service/metering.py):

* `read_articles(request)`, before metering: the content type (415), the size (413), the body's
  framing (a broken chunked encoding is a 400), the JSON and every record are checked without the
  database. Every record and field that is wrong is reported (up to MAX_REPORTED); nothing
  invalid ever reaches the database, so nothing is half-written.
* `write_articles(db, articles)`, after metering: one transaction, retried as a whole on a
  deadlock or lock wait timeout (`Database.retrying`), rows written in URL order so that
  concurrent imports of the same URLs take their locks in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from service.db import Database
from service.errors import ApiError, ErrorCode
from service.repositories import articles
from service.schemas import article_in, validation_error

NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl"}
JSON_TYPES = {"application/json"}
BATCH = 1000
_READ_CHUNK = 64 * 1024
MAX_REPORTED = 20


def read_articles(request: Request) -> list[dict]:
    """Every record of the body, validated, in order; or the 400/413/415 that says why not."""
    errors: list[dict] = []
    valid: list[dict] = []
    for index, record in _records(request):
        try:
            valid.append(_load(record))
        except ValidationError as exc:
            errors.extend(validation_error(exc.messages, "field", record=index).details)
            if len(errors) >= MAX_REPORTED:
                break
    if errors:
        first = errors[0]
        raise ApiError(
            400,
            ErrorCode.VALIDATION_ERROR,
            f"record {first['record']}: invalid field '{first['field']}': {first['message']} "
            "Nothing was imported.",
            details=errors[:MAX_REPORTED],
        )
    return valid


def write_articles(db: Database, valid: list[dict]) -> int:
    """Upsert every article in one transaction; a later duplicate URL wins (stable sort)."""
    ordered = sorted(valid, key=lambda a: a["url"])

    def write(cur) -> int:
        for start in range(0, len(ordered), BATCH):
            articles.upsert_many(cur, ordered[start : start + BATCH])
        return len(ordered)

    return db.retrying(write)


def _load(record) -> dict:
    if not isinstance(record, dict):
        raise ValidationError({"(record)": ["Must be a JSON object."]})
    return article_in.load(record)


def _records(request: Request) -> Iterator[tuple[int, object]]:
    mimetype = request.mimetype
    if mimetype in JSON_TYPES:
        return enumerate(_json_array(request))
    if mimetype in NDJSON_TYPES:
        return _ndjson(request)
    raise ApiError(
        415,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        "Send application/json (an array of articles) or application/x-ndjson (one per line).",
    )


def _broken_framing() -> ApiError:
    return ApiError(
        400,
        ErrorCode.BAD_REQUEST,
        "The request body's framing is broken (for example a chunk size that is not "
        "hexadecimal). Nothing was imported.",
    )


def _read(read, *args) -> bytes:
    """One read of the body. The server raises its own errors for a broken chunked encoding or
    a client gone mid-body (gunicorn's ParseException family, Werkzeug's ClientDisconnected):
    those are the client's framing, a 400, never a 500."""
    try:
        return read(*args)
    except HTTPException as exc:
        if exc.code == 413:
            raise
        raise _broken_framing() from None
    except (ValueError, OSError, EOFError):
        raise _broken_framing() from None
    except Exception as exc:
        if type(exc).__module__.startswith("gunicorn."):
            raise _broken_framing() from None
        raise


def _parse(text: bytes, where: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        problem = "nested too deeply"
    except (ValueError, UnicodeDecodeError) as exc:
        problem = _where(exc)
    raise ApiError(
        400, ErrorCode.MALFORMED_JSON, f"{where} not valid JSON ({problem}). Nothing was imported."
    )


def _json_array(request: Request) -> list:
    body = _read(request.get_data, False)  # raises 413 beyond MAX_CONTENT_LENGTH
    data = _parse(body, "The body is")
    if not isinstance(data, list):
        raise ApiError(
            400, ErrorCode.VALIDATION_ERROR, "The body must be a JSON array of articles."
        )
    return data


def _lines(stream) -> Iterator[bytes]:
    """The body's lines, read in chunks: iterating werkzeug's input stream itself reads it one
    byte per call (about 1 ms per 500-byte record). Linear in the body's size, however long a
    line; memory is one chunk plus the line being read."""
    pending: list[bytes] = []
    while chunk := _read(stream.read, _READ_CHUNK):
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            pending.append(chunk)
            continue
        pending.append(parts[0])
        yield b"".join(pending)
        yield from parts[1:-1]
        pending = [parts[-1]]
    tail = b"".join(pending)
    if tail:
        yield tail


def _ndjson(request: Request) -> Iterator[tuple[int, object]]:
    index = 0
    for line_number, raw in enumerate(_lines(request.stream), start=1):
        line = raw.strip()
        if not line:
            continue
        yield index, _parse(line, f"record {index} (line {line_number}) is")
        index += 1


def _where(exc: Exception) -> str:
    # json's message names the position only; it never repeats the document's content.
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "not UTF-8"
