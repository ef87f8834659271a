"""Support's key tools: `flask --app service keys show | update | rotate | reset-usage`.

Each prints a key only once, at creation (`rotate` prints the new key alone on stdout, like
`create`), and records who did what as one structured log line (`event`, `actor`, `key_id`,
`key_prefix`, the change); the actor is `--actor` or the operating-system user. Bad input is one
line on stderr and exit 1, and never echoes the value given (a key pasted by mistake where an id
belongs must not land in a terminal log). The parameter types here are shared with
`keys create`.
"""

from __future__ import annotations

import getpass
import logging
from datetime import date, datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from service.db import connect
from service.keys import generate_key, hash_key, key_prefix
from service.masking import mask_key
from service.quota import used_today, utc_now
from service.repositories import api_keys

SCOPES = ("export", "import", "audit", "admin")
# api_keys.rate_limit is a signed INT; a negative limit means nothing more than 0 (no request is
# admitted), so the CLI takes 0 to the column's maximum.
MAX_DAILY_LIMIT = 2_147_483_647
MAX_ID = 2_147_483_647
MAX_LABEL = 100
MAX_OVERLAP_DAYS = 90
log = logging.getLogger("service.keys")


class _OneLine(click.ParamType):
    """A parameter whose bad value is one line (`Error: ...`, exit 1), naming what it accepts."""

    requirement = ""

    def fail_line(self):
        raise click.ClickException(self.requirement)


class DailyLimit(_OneLine):
    name = "daily-limit"
    requirement = f"--daily-limit must be a whole number from 0 to {MAX_DAILY_LIMIT}"

    def convert(self, value, param, ctx) -> int:
        number = _whole(value)
        if number is None or not 0 <= number <= MAX_DAILY_LIMIT:
            self.fail_line()
        return number


class KeyId(_OneLine):
    name = "id"
    requirement = "the key id must be a whole number from 1 (the id `keys list` shows)"

    def convert(self, value, param, ctx) -> int:
        number = _whole(value)
        if number is None or not 1 <= number <= MAX_ID:
            self.fail_line()
        return number


class Scopes(_OneLine):
    name = "scopes"
    requirement = f"--scopes takes a comma-separated list of: {', '.join(SCOPES)}"

    def convert(self, value, param, ctx) -> frozenset[str]:
        if isinstance(value, frozenset):
            return value
        scopes = frozenset(s.strip() for s in str(value).split(",") if s.strip())
        if not scopes or not scopes <= set(SCOPES):
            self.fail_line()
        return scopes


class Day(_OneLine):
    name = "date"
    requirement = "--expires must be a date written YYYY-MM-DD"

    def convert(self, value, param, ctx) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail_line()


class Label(_OneLine):
    name = "label"
    requirement = f"--label must be at most {MAX_LABEL} characters"

    def convert(self, value, param, ctx) -> str | None:
        text = str(value).strip()
        if len(text) > MAX_LABEL:
            self.fail_line()
        return text or None  # --label "" clears it


def _whole(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() else None


DAILY_LIMIT = DailyLimit()
KEY_ID = KeyId()
SCOPE_LIST = Scopes()
DAY = Day()
LABEL = Label()

actor_option = click.option(
    "--actor", default=None, help="Who is acting, for the log line (default: the OS user)."
)


def _settings():
    return current_app.config["SETTINGS"]


def _actor(given: str | None) -> str:
    if given and given.strip():
        return given.strip()[:100]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(event: str, actor: str | None, row: dict, **details) -> None:
    """The who-did-what line: JSON on stderr through the service's log formatter."""
    log.info(
        event,
        extra={
            "event": event,
            "actor": _actor(actor),
            "key_id": row["id"],
            "key_prefix": row["key_prefix"],
            **details,
        },
    )


def _key_or_fail(cur, key_id: int) -> dict:
    row = api_keys.find_by_id(cur, key_id)
    if row is None:
        raise click.ClickException(f"no key with id {key_id}")
    return row


def _status(row: dict, today: date) -> str:
    if row["revoked_at"] is not None or not row["is_valid"]:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] < today:
        return "expired"
    if row["user_active"] == 0:
        return "owner inactive"
    return "active"


def _day(value: date | None) -> str:
    return value.isoformat() if value else "never"


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


@click.command("show")
@click.argument("key_id", type=KEY_ID)
@actor_option
@with_appcontext
def keys_show(key_id: int, actor: str | None) -> None:
    """Everything about one key but the key itself."""
    conn = connect(_settings())
    try:
        with conn.cursor() as cur:
            row = _key_or_fail(cur, key_id)
    finally:
        conn.close()
    today = utc_now().date()
    used = used_today(row["calls_made"], row["last_reset"], today)
    fields = [
        ("id", row["id"]),
        ("key", mask_key(row["key_prefix"])),
        ("owner", f"user {row['user_id']} ({row['username'] or 'no such user'})"),
        ("scopes", ",".join(s for s in SCOPES if s in row["scopes"])),
        ("daily limit", row["rate_limit"]),
        ("used today", f"{used} (UTC day {today.isoformat()})"),
        (
            "expires",
            _day(row["expires_at"]) + (" (last UTC day it works)" if row["expires_at"] else ""),
        ),
        ("status", _status(row, today)),
        ("weak", "yes: rotate it (keys rotate ID --overlap-days 7)" if row["weak"] else "no"),
        ("label", row["label"] or "-"),
        ("created", _time(row["created_at"])),
        ("revoked", _time(row["revoked_at"])),
    ]
    for name, value in fields:
        click.echo(f"{name + ':':<12} {value}")
    record("keys.show", actor, row)


@click.command("update")
@click.argument("key_id", type=KEY_ID)
@click.option(
    "--daily-limit",
    type=DAILY_LIMIT,
    default=None,
    help=f"Requests a UTC day, 0 to {MAX_DAILY_LIMIT}.",
)
@click.option("--scopes", type=SCOPE_LIST, default=None, help="Comma-separated scopes.")
@click.option("--expires", type=DAY, default=None, help="Last UTC day the key works.")
@click.option("--no-expiry", is_flag=True, help="The key never expires.")
@click.option("--label", type=LABEL, default=None, help='A note for operators ("" clears it).')
@actor_option
@with_appcontext
def keys_update(key_id, daily_limit, scopes, expires, no_expiry, label, actor) -> None:
    """Change a key's daily limit, scopes, expiry or label (the key itself never changes)."""
    if expires is not None and no_expiry:
        raise click.ClickException("give either --expires or --no-expiry, not both")
    changes: dict = {}
    if daily_limit is not None:
        changes["rate_limit"] = daily_limit
    if scopes is not None:
        changes["scopes"] = scopes
    if expires is not None or no_expiry:
        changes["expires_at"] = None if no_expiry else expires
    if label is not None or _label_given():
        changes["label"] = label
    if not changes:
        raise click.ClickException(
            "nothing to change: give --daily-limit, --scopes, --expires, --no-expiry or --label"
        )
    conn = connect(_settings())
    try:
        conn.begin()
        with conn.cursor() as cur:
            row = _key_or_fail(cur, key_id)
            api_keys.update(cur, key_id, changes)
        conn.commit()
    finally:
        conn.close()
    before = {
        "rate_limit": row["rate_limit"],
        "scopes": ",".join(s for s in SCOPES if s in row["scopes"]),
        "expires_at": _day(row["expires_at"]),
        "label": row["label"],
    }
    after = {
        k: (
            ",".join(s for s in SCOPES if s in v)
            if k == "scopes"
            else _day(v)
            if k == "expires_at"
            else v
        )
        for k, v in changes.items()
    }
    record("keys.update", actor, row, before={k: before[k] for k in after}, after=after)
    click.echo(
        f"updated key id {key_id} ({mask_key(row['key_prefix'])}): "
        + ", ".join(f"{k} {before[k]} -> {after[k]}" for k in after)
    )


def _label_given() -> bool:
    """`--label ""` (clear the label) parses to None, like an absent option: tell them apart."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source("label")
    return source is not None and source.name == "COMMANDLINE"


@click.command("rotate")
@click.argument("key_id", type=KEY_ID)
@click.option(
    "--overlap-days",
    type=click.IntRange(min=0, max=MAX_OVERLAP_DAYS),
    required=True,
    help="Days the old key keeps working after today (0: through today only).",
)
@click.option(
    "--expires",
    type=DAY,
    default=None,
    help="Last UTC day the NEW key works (default: it never expires).",
)
@actor_option
@with_appcontext
def keys_rotate(key_id: int, overlap_days: int, expires: date | None, actor: str | None) -> None:
    """A new key with the same owner, scopes and limit, printed alone on stdout, once; the old
    key works through the overlap, then expires."""
    settings = _settings()
    today = utc_now().date()
    last_day = today + timedelta(days=overlap_days)
    key = generate_key()
    conn = connect(settings)
    try:
        conn.begin()
        with conn.cursor() as cur:
            row = _key_or_fail(cur, key_id)
            status = _status(row, today)
            if status != "active":
                raise click.ClickException(
                    f"key id {key_id} is {status}: only an active key is rotated "
                    "(give the client a new one with keys create)"
                )
            new_id = api_keys.create(
                cur,
                user_id=row["user_id"],
                key_hash=hash_key(key, settings.KEY_HASH_SECRET),
                key_prefix=key_prefix(key),
                scopes=set(row["scopes"]),
                rate_limit=row["rate_limit"],
                expires_at=expires,
                label=f"rotated from key id {key_id}",
                now=utc_now(),
            )
            api_keys.end_overlap(cur, key_id, last_day)
        conn.commit()
    finally:
        conn.close()
    old_last = min(row["expires_at"], last_day) if row["expires_at"] else last_day
    record(
        "keys.rotate",
        actor,
        row,
        new_key_id=new_id,
        new_key_prefix=key_prefix(key),
        old_key_last_day=old_last.isoformat(),
        overlap_days=overlap_days,
    )
    click.echo(
        f"rotated key id {key_id} ({mask_key(row['key_prefix'])}): new key id {new_id} "
        f"({mask_key(key)}), same owner, scopes and limit; the old key works through "
        f"{old_last.isoformat()} (UTC), then expires",
        err=True,
    )
    click.echo(key)


@click.command("reset-usage")
@click.argument("key_id", type=KEY_ID)
@actor_option
@with_appcontext
def keys_reset_usage(key_id: int, actor: str | None) -> None:
    """Today's count back to zero, for a support ticket."""
    today = utc_now().date()
    conn = connect(_settings())
    try:
        conn.begin()
        with conn.cursor() as cur:
            row = _key_or_fail(cur, key_id)
            api_keys.reset_usage(cur, key_id)
        conn.commit()
    finally:
        conn.close()
    used = used_today(row["calls_made"], row["last_reset"], today)
    record("keys.reset_usage", actor, row, used_before=used, limit=row["rate_limit"])
    click.echo(
        f"reset today's usage of key id {key_id} ({mask_key(row['key_prefix'])}): "
        f"{used} of {row['rate_limit']} -> 0"
    )


SUPPORT_COMMANDS = (keys_show, keys_update, keys_rotate, keys_reset_usage)
