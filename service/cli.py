"""Flask CLI commands: `flask --app service <command>`.

migrate, load-sample-data, build-sample-sql, keys create|list|revoke, purge-audit-logs.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import date, datetime, timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from service import migrations
from service.clock import rfc3339, utc_now
from service.db import connect
from service.keys import generate_key, hash_key, key_prefix
from service.masking import mask_key
from service.quota import used_today
from service.repositories import api_keys, audit_logs

SCOPES = ("export", "import", "audit", "admin")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _settings():
    return current_app.config["SETTINGS"]


def quote_identifier(name: str) -> str:
    """The one place an identifier enters SQL: identifiers cannot be bound as parameters, so the
    name must match a strict pattern and is then back-quoted."""
    if not _IDENTIFIER.match(name):
        raise click.BadParameter("database names may hold only letters, digits and underscores")
    return f"`{name}`"


def ensure_database(settings) -> None:
    conn = connect(settings, database="")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE DATABASE IF NOT EXISTS " + quote_identifier(settings.DB_NAME)
                + " CHARACTER SET utf8mb4"
            )
    finally:
        conn.close()


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Create the database if needed and apply pending migrations (a re-run is a no-op)."""
    settings = _settings()
    ensure_database(settings)
    conn = connect(settings)
    try:
        applied = migrations.migrate(conn, log=lambda line: click.echo(line, err=True))
    finally:
        conn.close()
    latest = migrations.latest_version()
    click.echo(f"{len(applied)} migration(s) applied; schema at version {latest}")


@click.command("load-sample-data")
@with_appcontext
def load_sample_data_command() -> None:
    """Load the sample users, keys and articles (idempotent). Never run in production."""
    conn = connect(_settings())
    try:
        migrations.load_sample_data(conn)
    finally:
        conn.close()
    click.echo("sample data loaded (keys key_ABC123 and key_DEF456)")


@click.command("build-sample-sql")
@click.option("--check", is_flag=True, help="Exit 1 if sql/sample_database.sql is out of date.")
@with_appcontext
def build_sample_sql_command(check: bool) -> None:
    """Regenerate sql/sample_database.sql from the migrations and the sample data."""
    text = migrations.build_sample_database_sql()
    path = migrations.SAMPLE_DATABASE_FILE
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            click.echo(f"{path.name} is out of date: run flask --app service build-sample-sql")
            sys.exit(1)
        click.echo(f"{path.name} is up to date")
        return
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path}")


@click.group("keys")
def keys_group() -> None:
    """Create, list and revoke API keys. Keys are shown once, at creation; only hashes are kept."""


# api_keys.rate_limit is a signed INT; a negative limit means nothing more than 0 (no request is
# admitted), so the CLI takes 0 to the column's maximum.
MAX_DAILY_LIMIT = 2_147_483_647


class DailyLimit(click.ParamType):
    """`--daily-limit`: a whole number from 0 (the key admits nothing) to the column's maximum.
    A bad value is one line on stderr (`Error: ...`) and exit 1, never a traceback; shared by
    every command that sets a limit."""

    name = "daily-limit"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            number = int(value.strip())
        else:
            number = None
        if number is None or not 0 <= number <= MAX_DAILY_LIMIT:
            raise click.ClickException(
                f"--daily-limit must be a whole number from 0 to {MAX_DAILY_LIMIT}"
            )
        return number


DAILY_LIMIT = DailyLimit()


def _parse_scopes(value: str) -> set[str]:
    scopes = {s.strip() for s in value.split(",") if s.strip()}
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise click.BadParameter(f"choose from {', '.join(SCOPES)}", param_hint="--scopes")
    return scopes


@keys_group.command("create")
@click.option("--user-id", type=click.IntRange(min=1), required=True)
@click.option("--scopes", default="export", show_default=True, help="Comma-separated scopes.")
@click.option("--daily-limit", type=DAILY_LIMIT, default=100, show_default=True,
              help=f"Requests a UTC day, 0 to {MAX_DAILY_LIMIT} (0: the key admits nothing).")
@click.option("--expires", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Last UTC day the key works (YYYY-MM-DD); default: never expires.")
@click.option("--label", default=None, help="A note for operators (never shown to clients).")
@with_appcontext
def keys_create(user_id: int, scopes: str, daily_limit: int, expires, label) -> None:
    """Print a new key alone on stdout, once. Store it now: it cannot be shown again."""
    scope_set = _parse_scopes(scopes)
    expires_at: date | None = expires.date() if expires else None
    key = generate_key()
    conn = connect(_settings())
    try:
        with conn.cursor() as cur:
            if not api_keys.user_exists(cur, user_id):
                raise click.BadParameter(f"no user with id {user_id}", param_hint="--user-id")
            key_id = api_keys.create(
                cur,
                user_id=user_id,
                key_hash=hash_key(key),
                key_prefix=key_prefix(key),
                scopes=scope_set,
                rate_limit=daily_limit,
                expires_at=expires_at,
                label=label,
                now=utc_now(),
            )
    finally:
        conn.close()
    click.echo(
        f"created key id {key_id} ({mask_key(key)}) for user {user_id}, scopes "
        f"{','.join(sorted(scope_set))}, {daily_limit} calls a day", err=True
    )
    click.echo(key)


@keys_group.command("list")
@with_appcontext
def keys_list() -> None:
    """Every key by id and prefix (never the key), with today's usage."""
    conn = connect(_settings())
    try:
        with conn.cursor() as cur:
            rows = api_keys.list_all(cur)
    finally:
        conn.close()
    today = utc_now().date()
    header = f"{'id':>4}  {'key':<10} {'user':>4}  {'scopes':<26} {'limit':>7} {'today':>7}  " \
             f"{'expires':<10}  status"
    click.echo(header)
    for r in rows:
        if r["revoked_at"] is not None or not r["is_valid"]:
            status = "revoked"
        elif r["expires_at"] is not None and r["expires_at"] < today:
            status = "expired"
        else:
            status = "active"
        used = used_today(r["calls_made"], r["last_reset"], today)
        click.echo(
            f"{r['id']:>4}  {mask_key(r['key_prefix']):<10} {r['user_id']:>4}  "
            f"{','.join(sorted(r['scopes'])):<26} {r['rate_limit']:>7} {used:>7}  "
            f"{(r['expires_at'].isoformat() if r['expires_at'] else 'never'):<10}  {status}"
        )


@keys_group.command("revoke")
@click.argument("key_id", type=click.IntRange(min=1))
@with_appcontext
def keys_revoke(key_id: int) -> None:
    """Disable a key at once (by the id `keys list` shows)."""
    conn = connect(_settings())
    try:
        with conn.cursor() as cur:
            revoked = api_keys.revoke(cur, key_id, utc_now())
    finally:
        conn.close()
    if not revoked:
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"revoked key id {key_id}")


@click.command("purge-audit-logs")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Keep this many days (default: AUDIT_RETENTION_DAYS).")
@click.option("--batch", type=click.IntRange(min=1, max=100_000), default=5000, show_default=True)
@click.option("--pause", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Seconds between batches, so the purge never holds locks for long.")
@with_appcontext
def purge_audit_logs_command(days: int | None, batch: int, pause: float) -> None:
    """Delete audit rows older than the retention period, in batches (meant for cron)."""
    settings = _settings()
    keep = days or settings.AUDIT_RETENTION_DAYS
    cutoff = utc_now() - timedelta(days=keep)
    total = purge_audit_logs(connect(settings), cutoff, batch=batch, pause=pause)
    click.echo(f"purged {total} audit row(s) older than {rfc3339(cutoff)}")


def purge_audit_logs(conn, cutoff: datetime, *, batch: int, pause: float = 0.0) -> int:
    total = 0
    try:
        with conn.cursor() as cur:
            while True:
                deleted = audit_logs.purge_batch(cur, cutoff, batch)
                total += deleted
                if deleted < batch:
                    return total
                time.sleep(pause)
    finally:
        conn.close()


def register_commands(app: Flask) -> None:
    for command in (
        migrate_command,
        load_sample_data_command,
        build_sample_sql_command,
        keys_group,
        purge_audit_logs_command,
    ):
        app.cli.add_command(command)
