"""marshmallow schemas for every input (query strings, JSON records, NDJSON lines) and output.

Unknown fields are refused (marshmallow's default RAISE), so a typo such as `?limt=5` is a 400 that
names the parameter instead of a silent default.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC
from json.encoder import encode_basestring as _json_str

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.clock import rfc3339
from service.errors import ApiError, ErrorCode

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_STREAM = 10_000_000
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")
_NOT_BLANK = validate.Regexp(r"\S", error="Must not be blank.")
_CURSOR_PREFIX = b"id:"
LANGUAGE_MAX_CHARS = 20  # articles.language VARCHAR(20): longer codes are a 400, not a 500


class Cursor(fields.Field):
    """An opaque page cursor: base64url of `id:<last id seen>`."""

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if not isinstance(value, str) or len(value) > 64:
            raise ValidationError("Not a valid cursor.")
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise ValidationError("Not a valid cursor.") from None
        if not raw.startswith(_CURSOR_PREFIX) or not raw[len(_CURSOR_PREFIX):].isdigit():
            raise ValidationError("Not a valid cursor.")
        last_id = int(raw[len(_CURSOR_PREFIX):])
        if last_id < 1:
            raise ValidationError("Not a valid cursor.")
        return last_id


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + str(last_id).encode()).decode().rstrip("=")


class UtcDateTime(fields.DateTime):
    """Dumps a naive-UTC DATETIME (or an aware one) with the one RFC 3339 formatter, at one
    fixed precision per field (milliseconds for audit timestamps, whole seconds otherwise)."""

    def __init__(self, *, milliseconds: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.milliseconds = milliseconds

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else rfc3339(value, milliseconds=self.milliseconds)


class Rfc3339(fields.AwareDateTime):
    """An aware date-time, normalised to UTC; instants beyond year 9999 UTC are a 400."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Out of the supported range (years 1 to 9999, UTC).") from None


def _rfc3339(**kwargs) -> Rfc3339:
    return Rfc3339(
        format="iso",
        error_messages={
            "invalid": "Not a valid RFC 3339 date-time (e.g. 2026-01-31T00:00:00Z).",
            "invalid_awareness": "Must carry a time zone (e.g. Z or +02:00).",
        },
        **kwargs,
    )


class PageQuery(Schema):
    limit = fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE, error=f"Must be from 1 to {MAX_PAGE}."),
        strict=False,
    )
    cursor = Cursor(load_default=None)
    since = _rfc3339(load_default=None)


class ExportQuery(PageQuery):
    """With format=ndjson, `limit` is optional (without it every matching row streams) and may
    exceed a JSON page, up to MAX_STREAM. The bounds depend on the format, so they are checked
    here, with a message that states the bounds of the format asked for."""

    limit = fields.Integer(load_default=None, strict=False)
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "ndjson"]))

    @validates_schema
    def _limit_bounds(self, data, **kwargs):
        limit = data.get("limit")
        if limit is None:
            return
        if data.get("format") == "ndjson":
            if not 1 <= limit <= MAX_STREAM:
                message = f"Must be from 1 to {MAX_STREAM} with format=ndjson."
                raise ValidationError(message, "limit")
        elif not 1 <= limit <= MAX_PAGE:
            raise ValidationError(
                f"Must be from 1 to {MAX_PAGE} with format=json (the default); "
                f"format=ndjson streams up to {MAX_STREAM}.",
                "limit",
            )

    @post_load
    def _default_page(self, data, **kwargs):
        if data["format"] == "json" and data["limit"] is None:
            data["limit"] = DEFAULT_PAGE
        return data


class AuditQuery(PageQuery):
    endpoint = fields.String(load_default=None, validate=validate.Length(min=1, max=255))
    status = fields.Integer(load_default=None, validate=validate.Range(min=100, max=599))


class ArticleIn(Schema):
    title = fields.String(required=True, validate=[validate.Length(min=1, max=300), _NOT_BLANK])
    url = fields.Url(
        required=True,
        schemes={"https"},
        require_tld=True,
        validate=validate.Length(max=700),
        error_messages={"invalid": "Must be an absolute https URL."},
    )
    language = fields.String(
        required=True,
        validate=[
            validate.Length(max=LANGUAGE_MAX_CHARS),
            validate.Regexp(_LANGUAGE, error="Must be a language code such as en or zh-hans."),
        ],
    )
    summary = fields.String(
        required=True, validate=[validate.Length(min=1, max=20_000), _NOT_BLANK]
    )
    updated_at = _rfc3339(required=True)


class ArticleOut(Schema):
    id = fields.Integer()
    title = fields.String()
    url = fields.String()
    language = fields.String()
    summary = fields.String()
    updated_at = UtcDateTime()


class AuditRowOut(Schema):
    id = fields.Integer()
    masked_key = fields.String(allow_none=True)
    endpoint = fields.String()
    method = fields.String(allow_none=True)
    response_code = fields.Integer()
    response_time_ms = fields.Integer()
    timestamp = UtcDateTime(milliseconds=True)  # DATETIME(3): 2026-12-02T04:35:35.054Z
    request_id = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)


def dump_article(row: dict) -> dict:
    """Exactly `ArticleOut().dump(row)` for a row of `articles.page` (NOT NULL columns), without
    marshmallow's per-field machinery: the export serializes every row it sends, and a streamed
    export sends millions (tests/rules/test_encoders.py checks the two agree)."""
    return {
        "id": int(row["id"]),
        "title": str(row["title"]),
        "url": str(row["url"]),
        "language": str(row["language"]),
        "summary": str(row["summary"]),
        "updated_at": rfc3339(row["updated_at"]),
    }


# One NDJSON line of the export: byte for byte `json.dumps(dump_article(row), ensure_ascii=False)
# + "\n"` (same keys, order and separators; strings go through the very function json.dumps uses),
# without building a dict and walking it for each of millions of rows.
_NDJSON_LINE = (
    '{"id": %d, "title": %s, "url": %s, "language": %s, "summary": %s, "updated_at": %s}\n'
)


def article_ndjson_line(row: dict) -> str:
    updated_at = row["updated_at"]
    if not isinstance(updated_at, str):  # text already from articles.page(dates_as_text=True)
        updated_at = rfc3339(updated_at)
    return _NDJSON_LINE % (
        row["id"],
        _json_str(str(row["title"])),
        _json_str(str(row["url"])),
        _json_str(str(row["language"])),
        _json_str(str(row["summary"])),
        _json_str(updated_at),
    )


article_in = ArticleIn()
audit_rows_out = AuditRowOut(many=True)


def load_query(schema: Schema, args) -> dict:
    """Validate a query string; a 400 that names each bad parameter."""
    try:
        return schema.load(args.to_dict(flat=True))
    except ValidationError as exc:
        raise validation_error(exc.messages, "parameter") from None


def validation_error(messages: dict, what: str, *, record: int | None = None) -> ApiError:
    details = []
    for field, problems in _flatten(messages):
        entry = {"field": field, "message": problems}
        if record is not None:
            entry = {"record": record, **entry}
        details.append(entry)
    first = details[0]
    where = f"record {record}: " if record is not None else ""
    message = f"{where}invalid {what} '{first['field']}': {first['message']}"
    return ApiError(400, ErrorCode.VALIDATION_ERROR, message, details=details)


def _flatten(messages) -> list[tuple[str, str]]:
    out = []
    for field, problems in messages.items():
        if field == "_schema":
            field = "(record)"
        if isinstance(problems, dict):
            problems = [str(v) for v in problems.values()]
        text = " ".join(map(str, problems)) if isinstance(problems, list) else str(problems)
        if text == "Unknown field.":
            text = f"Unknown {field!r}; it is not accepted here."
        out.append((str(field), text))
    return out
