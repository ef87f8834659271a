"""marshmallow schemas for every input (query strings, JSON records, NDJSON lines) and output.

Unknown fields are refused (marshmallow's default RAISE), so a typo such as `?limt=5` is a 400 that
names the parameter instead of a silent default.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.clock import rfc3339
from service.errors import ApiError, ErrorCode
from service.masking import redact_keys

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_STREAM = 10_000_000
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")
_NOT_BLANK = validate.Regexp(r"\S", error="Must not be blank.")
_CURSOR_PREFIX = b"id:"
LANGUAGE_MAX_CHARS = 20  # articles.language VARCHAR(20): longer codes are a 400, not a 500


# Column sizes the validation must respect, or the database refuses the row (a 500 otherwise).
LANGUAGE_MAX_CHARS = 20  # articles.language VARCHAR(20)
SUMMARY_MAX_BYTES = 65_535  # articles.summary TEXT: bytes, not characters (utf8mb4: up to 4 each)
_ASCII_DIGITS = re.compile(r"^[0-9]{1,18}$")
# An integer parameter: ASCII digits, with a minus sign at most (so that -5 is refused by its
# bounds, with the message that states them).
_ASCII_INTEGER = re.compile(r"^-?[0-9]{1,18}$")
# RFC 3339 section 5.6 exactly: full-date "T" full-time, seconds required, fraction optional,
# "Z" or a numeric offset with a colon. No week dates, no ordinal dates, no basic format.
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _encodable(value: str) -> None:
    """A lone surrogate (JSON allows "\\ud800") is not a character: UTF-8 cannot store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode text (no lone surrogates).") from None


def _max_bytes(limit: int):
    def check(value: str) -> None:
        if len(value.encode("utf-8", "surrogatepass")) > limit:
            raise ValidationError(f"Longer than {limit} bytes in UTF-8.")

    return check


class Cursor(fields.Field):
    """An opaque page cursor: base64url of `id:<last id seen>`, exactly as `encode_cursor` wrote
    it (no padding, no trailing characters: it must round-trip)."""

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if not isinstance(value, str) or len(value) > 64 or not value.isascii():
            raise ValidationError("Not a valid cursor.")
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise ValidationError("Not a valid cursor.") from None
        digits = raw[len(_CURSOR_PREFIX) :]
        if not raw.startswith(_CURSOR_PREFIX) or not _ASCII_DIGITS.match(digits.decode("latin-1")):
            raise ValidationError("Not a valid cursor.")
        last_id = int(digits)
        if last_id < 1 or encode_cursor(last_id) != value:
            raise ValidationError("Not a valid cursor.")
        return last_id


class AsciiInteger(fields.Integer):
    """A whole number written in ASCII digits only (and a minus sign): int() would also take "٣",
    "+5", " 5" or "5_0"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _ASCII_INTEGER.match(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


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
    """An RFC 3339 date-time (exactly: ISO 8601's other forms are refused), normalised to UTC;
    instants beyond year 9999 UTC are a 400."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise self.make_error("invalid")
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
    limit = AsciiInteger(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE, error=f"Must be from 1 to {MAX_PAGE}."),
    )
    cursor = Cursor(load_default=None)
    since = _rfc3339(load_default=None)


class ExportQuery(PageQuery):
    """With format=ndjson, `limit` is optional (without it every matching row streams) and may
    exceed a JSON page, up to MAX_STREAM. The bounds depend on the format, so they are checked
    here, with a message that states the bounds of the format asked for."""

    limit = AsciiInteger(load_default=None)
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
    status = AsciiInteger(load_default=None, validate=validate.Range(min=100, max=599))


class ArticleIn(Schema):
    title = fields.String(
        required=True, validate=[_encodable, validate.Length(min=1, max=300), _NOT_BLANK]
    )
    url = fields.Url(
        required=True,
        schemes={"https"},
        require_tld=True,
        validate=[_encodable, validate.Length(max=700)],
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
        required=True,
        validate=[
            _encodable,
            validate.Length(min=1, max=20_000),
            _max_bytes(SUMMARY_MAX_BYTES),
            _NOT_BLANK,
        ],
    )
    updated_at = _rfc3339(required=True)


class ArticleOut(Schema):
    """An exported article. The database forms it (repositories/articles.py: JSON_OBJECTS for
    `format=json`, NDJSON_LINES for `format=ndjson`); tests/database/test_ndjson_sql.py holds both
    byte for byte to json.dumps of this schema's dump."""

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


article_in = ArticleIn()
audit_rows_out = AuditRowOut(many=True)


def load_query(schema: Schema, args) -> dict:
    """Validate a query string; a 400 that names each bad parameter. One value per parameter:
    `limit=1&limit=5000` is refused, never read as either."""
    repeated = [name for name in args if len(args.getlist(name)) > 1]
    if repeated:
        raise validation_error({name: ["Given more than once."] for name in repeated}, "parameter")
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
        # Names are client text: a key pasted as a name is echoed as its prefix only.
        field = redact_keys(str(field))
        if text == "Unknown field.":
            text = f"Unknown {field!r}; it is not accepted here."
        out.append((field, text))
    return out
