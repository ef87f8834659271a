"""Flask CLI commands: `flask --app service <command>`.

migrate, load-sample-data, build-sample-sql, keys create|list|revoke, purge-audit-logs.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from service import legacy_upgrade, migration_lock, migrations
from service.clock import rfc3339, utc_now
from service.db import connect
from service.key_commands import DAILY_LIMIT, DAY, MAX_DAILY_LIMIT, SCOPE_LIST, SUPPORT_COMMANDS
from service.keys import generate_key, hash_key, key_prefix
from service.masking import mask_key
from service.quota import used_today
from service.repositories import api_keys, audit_logs

# An ALTER TABLE on a large legacy audit_logs can run for many minutes.
MIGRATION_READ_TIMEOUT = 6 * 3600
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
                "CREATE DATABASE IF NOT EXISTS "
                + quote_identifier(settings.DB_NAME)
                + " CHARACTER SET utf8mb4"
            )
    finally:
        conn.close()


@click.command("migrate")
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print what the upgrade would do, per key and in total; change nothing.",
)
@click.option(
    "--expired-grace-days",
    type=click.IntRange(min=1, max=365),
    default=legacy_upgrade.DEFAULT_GRACE_DAYS,
    show_default=True,
    help="Legacy keys past their expiry (which legacy ignored) keep working this many "
    "days after the upgrade.",
)
@click.option(
    "--enforce-expiry-now",
    is_flag=True,
    help="No grace: legacy keys past their expiry are refused from the upgrade on.",
)
@with_appcontext
def migrate_command(plan_only: bool, expired_grace_days: int, enforce_expiry_now: bool) -> None:
    """Create the database if needed and apply pending migrations (a re-run is a no-op).

    From a legacy database it prints the upgrade's summary first (the same as --plan).
    """
    settings = _settings()
    context = legacy_upgrade.Context(
        secret=settings.KEY_HASH_SECRET,
        grace_days=0 if enforce_expiry_now else expired_grace_days,
        today=utc_now().date(),
    )
    if plan_only:
        conn = connect(settings, database="")
        try:
            with conn.cursor() as cur:
                exists = _database_exists(cur, settings.DB_NAME)
        finally:
            conn.close()
        if not exists:
            click.echo(
                f"database {settings.DB_NAME} does not exist: migrate creates it, then "
                "applies every migration"
            )
            return
        conn = connect(settings)
        try:
            plan = migrations.plan(conn, context)
        finally:
            conn.close()
        click.echo("plan only: nothing has been changed")
        for line in plan.lines():
            click.echo(line)
        return
    ensure_database(settings)
    conn = connect(settings, read_timeout=MIGRATION_READ_TIMEOUT)
    try:
        applied = migrations.migrate(
            conn,
            context,
            log=lambda line: click.echo(line, err=True),
            on_plan=lambda plan: click.echo("\n".join(plan.lines())),
        )
    except (
        migrations.MigrationError,
        migration_lock.LockNotGranted,
        legacy_upgrade.UpgradeRefused,
    ) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    latest = migrations.latest_version()
    click.echo(f"{len(applied)} migration(s) applied; schema at version {latest}")


def _database_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
    return cur.fetchone() is not None


@click.command("load-sample-data")
@click.option(
    "--extra",
    "extra",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another SQL file to load after the sample data (test fixtures), with its "
    "{{key_hash:...}} placeholders filled in the same way.",
)
@with_appcontext
def load_sample_data_command(extra: tuple[Path, ...]) -> None:
    """Load the sample users, keys and articles (idempotent). Never run in production."""
    settings = _settings()
    conn = connect(settings)
    try:
        migrations.load_sample_data(conn, settings.KEY_HASH_SECRET, extra)
    finally:
        conn.close()
    click.echo("sample data loaded (keys key_AB... and key_DE...)")


@click.command("build-sample-sql")
@click.option("--check", is_flag=True, help="Exit 1 if sql/sample_database.sql is out of date.")
@with_appcontext
def build_sample_sql_command(check: bool) -> None:
    """Regenerate sql/sample_database.sql from the migrations and the sample data.

    Migrates a scratch database (created and dropped here) to learn which statements a fresh
    install executes."""
    text = migrations.build_sample_database_sql(_fresh_install_steps(_settings()))
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


def _fresh_install_steps(settings) -> set[tuple[int, int]]:
    scratch = f"wme_sample_build_{uuid.uuid4().hex[:12]}"
    server = connect(settings, database="")
    try:
        with server.cursor() as cur:
            cur.execute("CREATE DATABASE " + quote_identifier(scratch) + " CHARACTER SET utf8mb4")
        conn = connect(settings, database=scratch)
        try:
            return migrations.fresh_install_steps(conn)
        finally:
            conn.close()
            with server.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS " + quote_identifier(scratch))
    finally:
        server.close()


@click.group("keys")
def keys_group() -> None:
    """API keys: create, list, show, update, rotate, reset-usage, revoke. A key is shown once,
    at creation (create, rotate); only its keyed hash is kept."""


for _command in SUPPORT_COMMANDS:
    keys_group.add_command(_command)


@keys_group.command("create")
@click.option("--user-id", type=click.IntRange(min=1), required=True)
@click.option(
    "--scopes", type=SCOPE_LIST, default="export", show_default=True, help="Comma-separated scopes."
)
@click.option(
    "--daily-limit",
    type=DAILY_LIMIT,
    default=100,
    show_default=True,
    help=f"Requests a UTC day, 0 to {MAX_DAILY_LIMIT} (0: the key admits nothing).",
)
@click.option(
    "--expires",
    type=DAY,
    default=None,
    help="Last UTC day the key works (YYYY-MM-DD); default: never expires.",
)
@click.option("--label", default=None, help="A note for operators (never shown to clients).")
@with_appcontext
def keys_create(
    user_id: int, scopes: frozenset[str], daily_limit: int, expires: date | None, label
) -> None:
    """Print a new key alone on stdout, once. Store it now: it cannot be shown again."""
    key = generate_key()
    conn = connect(_settings())
    try:
        with conn.cursor() as cur:
            if not api_keys.user_exists(cur, user_id):
                raise click.BadParameter(f"no user with id {user_id}", param_hint="--user-id")
            key_id = api_keys.create(
                cur,
                user_id=user_id,
                key_hash=hash_key(key, _settings().KEY_HASH_SECRET),
                key_prefix=key_prefix(key),
                scopes=scopes,
                rate_limit=daily_limit,
                expires_at=expires,
                label=label,
                now=utc_now(),
            )
    finally:
        conn.close()
    click.echo(
        f"created key id {key_id} ({mask_key(key)}) for user {user_id}, scopes "
        f"{','.join(sorted(scopes))}, {daily_limit} calls a day",
        err=True,
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
    header = (
        f"{'id':>4}  {'key':<10} {'user':>4}  {'scopes':<26} {'limit':>7} {'today':>7}  "
        f"{'expires':<10}  {'status':<8} weak"
    )
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
            f"{(r['expires_at'].isoformat() if r['expires_at'] else 'never'):<10}  {status:<8} "
            f"{'yes' if r['weak'] else 'no'}"
        )
    weak = sum(1 for r in rows if r["weak"] and r["revoked_at"] is None and r["is_valid"])
    if weak:
        click.echo(
            f"{weak} weak key(s) (legacy, under 128 bits): replace each with "
            "flask --app service keys rotate ID --overlap-days 7"
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
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep this many days (default: AUDIT_RETENTION_DAYS).",
)
@click.option("--batch", type=click.IntRange(min=1, max=100_000), default=5000, show_default=True)
@click.option(
    "--pause",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="Seconds between batches, so the purge never holds locks for long.",
)
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
