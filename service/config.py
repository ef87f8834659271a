"""Settings from the environment (and an optional `.env`), validated once at boot by one schema.

Every setting the app and gunicorn (`service/gunicorn_conf.py`) read is a field of
`SettingsSchema` and is listed in `.env.example` with its default. The environment wins over
`.env`; tests pass a mapping to `create_app()` which wins over both.

A bad setting stops the boot with one line per problem naming the setting, where it came from and
what it accepts, never its value (it could be a password): `ConfigError`. gunicorn's master checks
the settings before it starts any worker (`load_or_exit`), and so does `scripts/run` before it
migrates; the `flask` command line prints the same lines (a `ConfigError` is a click error).
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import click
from dotenv import dotenv_values
from marshmallow import EXCLUDE, Schema, ValidationError, pre_load, validate
from marshmallow import fields as mf

from service.keys import MIN_SECRET_LENGTH

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
UNSET_SECRET_LINE = " ".join(
    (
        "KEY_HASH_SECRET is not set: the service refuses to start without the secret its key",
        "hashes are keyed with (docs/operations.md, 'Key hash secret')",
    )
)
# The exit status of a boot refused for its configuration (a usage error, as click has it).
EXIT_BAD_SETTING = 2


class ConfigError(click.ClickException, ValueError):
    """One or more settings are missing or malformed: the service refuses to boot.

    `problems` holds one line per bad setting; none quotes a value."""

    exit_code = EXIT_BAD_SETTING

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def show(self, file=None) -> None:
        click.echo(self.message, file=file or sys.stderr)


def _accepts(text: str, default: object = None) -> dict:
    return {"accepts": text, "default": default}


def _whole(low: int, high: int | None, accepts: str, default: int) -> mf.Integer:
    return mf.Integer(
        strict=False,
        load_default=default,
        validate=validate.Range(min=low, max=high),
        metadata=_accepts(accepts, default),
    )


def _seconds(default: float) -> mf.Float:
    return mf.Float(
        load_default=default,
        allow_nan=False,
        validate=validate.Range(min=0, max=3600, min_inclusive=False),
        metadata=_accepts("a number of seconds above 0 and at most 3600", default),
    )


_HOST = validate.Regexp(r"^[A-Za-z0-9_.:\-\[\]%]{1,255}$")


class SettingsSchema(Schema):
    """Every setting of the service and of its gunicorn, with what it accepts."""

    class Meta:
        unknown = EXCLUDE  # the environment holds much else

    # ---- database
    DB_USER = mf.String(
        load_default="root",
        validate=validate.Length(min=1, max=80),
        metadata=_accepts("a MySQL user name (1 to 80 characters)", "root"),
    )
    DB_PASS = mf.String(load_default="", metadata=_accepts("any text (empty for none)", ""))
    DB_HOST = mf.String(
        load_default="127.0.0.1",
        validate=_HOST,
        metadata=_accepts("a host name or IP address", "127.0.0.1"),
    )
    DB_PORT = _whole(1, 65535, "a whole number from 1 to 65535", 3306)
    # Several database hosts (a Galera cluster's nodes), comma-separated host:port, tried in order:
    # when the current one is lost, the service moves to the next. Empty: DB_HOST and DB_PORT.
    DB_HOSTS = mf.String(
        load_default="",
        validate=lambda value: _valid_db_hosts(value),
        metadata=_accepts("empty, or a comma-separated list of distinct host:port pairs", ""),
    )
    DB_NAME = mf.String(
        load_default="wikimedia_prod",
        validate=validate.Regexp(r"^[A-Za-z0-9_]{1,64}$"),
        metadata=_accepts(
            "a database name of letters, digits and underscores (1 to 64)", "wikimedia_prod"
        ),
    )
    # Optional session time zone for the service's connections (e.g. "+13:00"). Quota and audit
    # never depend on it; it exists so tests can prove that.
    DB_TIME_ZONE = mf.String(
        load_default="",
        validate=validate.Regexp(r"^(?:[+-](?:0\d|1[0-3]):[0-5]\d)?$"),
        metadata=_accepts("empty, or an offset from -13:59 to +13:59 such as +13:00", ""),
    )
    DB_CONNECT_TIMEOUT = _seconds(3.0)
    DB_READ_TIMEOUT = _seconds(10.0)
    DB_WRITE_TIMEOUT = _seconds(10.0)
    # Seconds a client is told to wait (Retry-After) when the database cannot be reached.
    DB_RETRY_AFTER = _whole(0, 86_400, "a whole number of seconds from 0 to 86400", 5)
    # ---- HTTP (the app)
    # Number of reverse proxies in front of the service whose X-Forwarded-* headers are trusted.
    TRUSTED_PROXIES = _whole(0, 10, "a whole number from 0 (no proxy) to 10", 0)
    # Failed authentications (a key that matches none) allowed per client address and UTC minute,
    # across all workers; beyond it the address gets 429 until the minute ends. 0 turns it off.
    AUTH_FAILURES_PER_MINUTE = _whole(
        0, 1_000_000, "a whole number from 0 (no limit) to 1000000", 30
    )
    # Largest accepted request body, in bytes (imports); larger bodies get 413.
    MAX_BODY_BYTES = _whole(1024, 2**40, "a whole number of bytes, at least 1024", 64 * 1024 * 1024)
    # ---- audit trail
    AUDIT_RETENTION_DAYS = _whole(
        1, 36_500, "a whole number of days from 1 to 36500 (0 would purge every row)", 90
    )
    # Audit rows are buffered per worker and written in batches: at most this many wait in memory.
    AUDIT_BUFFER_SIZE = _whole(1, 10_000_000, "a whole number from 1 to 10000000", 10_000)
    AUDIT_FLUSH_INTERVAL = mf.Float(
        load_default=0.5,
        allow_nan=False,
        validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata=_accepts("a number of seconds above 0 and at most 1", 0.5),
    )
    # ---- key cache (service/key_cache.py)
    # Seconds a worker keeps a key's row to refuse a spent key and answer /api/usage without a
    # statement; 0 turns the cache off. Admissions never rest on it.
    KEY_CACHE_SECONDS = mf.Float(
        load_default=2.0,
        allow_nan=False,
        validate=validate.Range(min=0, max=60),
        metadata=_accepts("a number of seconds from 0 (off) to 60", 2.0),
    )
    # ---- key hashes (service/keys.py). No default: without it the service refuses to start.
    # KEY_HASH_SECRET_PREVIOUS, during a rotation only, is still accepted for lookup and each key
    # found with it is rehashed under the new secret (docs/operations.md, "Key hash secret").
    KEY_HASH_SECRET = mf.String(
        load_default="",
        validate=validate.Length(min=MIN_SECRET_LENGTH),
        metadata=_accepts(
            f"a secret of at least {MIN_SECRET_LENGTH} characters, kept outside "
            "the database (docs/operations.md, 'Key hash secret')"
        ),
    )
    KEY_HASH_SECRET_PREVIOUS = mf.String(
        load_default="",
        validate=validate.Length(min=MIN_SECRET_LENGTH),
        metadata=_accepts(
            f"empty, or the previous secret (at least {MIN_SECRET_LENGTH} "
            "characters) during a rotation"
        ),
    )
    LOG_LEVEL = mf.String(
        load_default="INFO",
        validate=validate.OneOf(LOG_LEVELS),
        metadata=_accepts("one of " + ", ".join(LOG_LEVELS) + " (any case)", "INFO"),
    )
    # ---- gunicorn (service/gunicorn_conf.py)
    PORT = _whole(1, 65535, "a whole number from 1 to 65535", 8080)
    BIND_HOST = mf.String(
        load_default="0.0.0.0",  # noqa: S104 - the container's interface; scripts/run says so
        validate=_HOST,
        metadata=_accepts("a host name or IP address to listen on", "0.0.0.0"),  # noqa: S104
    )
    # None: 2 x cores + 1 (an empty value in .env means that default too).
    WEB_CONCURRENCY = mf.Integer(
        strict=False,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=256),
        metadata=_accepts("empty (2 x cores + 1), or a whole number of workers from 1 to 256"),
    )
    GUNICORN_TIMEOUT = _whole(1, 3600, "a whole number of seconds from 1 to 3600", 60)
    GUNICORN_GRACEFUL_TIMEOUT = _whole(1, 3600, "a whole number of seconds from 1 to 3600", 30)

    # ---- metrics
    # Who may read /metrics (service/blueprints/meta.py); anyone else gets a 404.
    METRICS_ALLOW = mf.String(
        load_default="127.0.0.0/8,::1",
        validate=lambda value: _valid_networks(value),
        metadata=_accepts(
            "comma-separated IP addresses or CIDR networks (empty: nobody)", "127.0.0.0/8,::1"
        ),
    )

    @pre_load
    def _normalise(self, data: dict, **kwargs) -> dict:
        data = dict(data)
        if data.get("WEB_CONCURRENCY") == "":
            data["WEB_CONCURRENCY"] = None
        for name in ("KEY_HASH_SECRET", "KEY_HASH_SECRET_PREVIOUS"):
            if data.get(name) == "":  # empty is not set (the load below says so for the secret)
                del data[name]
        level = data.get("LOG_LEVEL")
        if isinstance(level, str):
            data["LOG_LEVEL"] = level.strip().upper()
        return data


@dataclass(frozen=True)
class Settings:
    """The validated settings; field by field what `SettingsSchema` loads."""

    DB_USER: str = "root"
    DB_PASS: str = ""
    DB_HOST: str = "127.0.0.1"
    DB_PORT: int = 3306
    DB_HOSTS: str = ""
    DB_NAME: str = "wikimedia_prod"
    DB_TIME_ZONE: str = ""
    DB_CONNECT_TIMEOUT: float = 3.0
    DB_READ_TIMEOUT: float = 10.0
    DB_WRITE_TIMEOUT: float = 10.0
    DB_RETRY_AFTER: int = 5
    TRUSTED_PROXIES: int = 0
    MAX_BODY_BYTES: int = 64 * 1024 * 1024
    AUDIT_RETENTION_DAYS: int = 90
    AUDIT_BUFFER_SIZE: int = 10_000
    AUDIT_FLUSH_INTERVAL: float = 0.5
    KEY_CACHE_SECONDS: float = 2.0
    LOG_LEVEL: str = "INFO"
    KEY_HASH_SECRET: str = ""
    KEY_HASH_SECRET_PREVIOUS: str = ""
    PORT: int = 8080
    BIND_HOST: str = "0.0.0.0"  # noqa: S104
    WEB_CONCURRENCY: int | None = None
    GUNICORN_TIMEOUT: int = 60
    GUNICORN_GRACEFUL_TIMEOUT: int = 30
    AUTH_FAILURES_PER_MINUTE: int = 30
    METRICS_ALLOW: str = "127.0.0.0/8,::1"

    @classmethod
    def load(cls, overrides: Mapping[str, object] | None = None) -> Settings:
        raw, sources = read_raw(overrides)
        schema = SettingsSchema()
        try:
            values = schema.load(raw)
        except ValidationError as exc:
            raise ConfigError(problems(schema, exc.messages, raw, sources)) from None
        if not values["KEY_HASH_SECRET"]:
            raise ConfigError([UNSET_SECRET_LINE])
        return cls(**values)

    @property
    def db_addresses(self) -> tuple[tuple[str, int], ...]:
        """The database servers to try, in order: DB_HOSTS, or else DB_HOST and DB_PORT."""
        return parse_db_hosts(self.DB_HOSTS) or ((self.DB_HOST, self.DB_PORT),)


_HOST_PORT = re.compile(r"^([A-Za-z0-9_.\-]{1,255}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")


def parse_db_hosts(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (an IPv6 address in brackets) into pairs; empty gives ().
    Raises ValueError (without the value) when malformed or when a host:port repeats."""
    if not value.strip():
        return ()
    addresses = []
    for item in value.split(","):
        match = _HOST_PORT.match(item.strip())
        if not match or not 0 < int(match[2]) < 65536:
            raise ValueError("not a comma-separated list of host:port")
        addresses.append((match[1].strip("[]"), int(match[2])))
    if len(set(addresses)) != len(addresses):
        raise ValueError("a host:port is listed twice")
    return tuple(addresses)


def _valid_db_hosts(value: str) -> bool:
    try:
        parse_db_hosts(value)
    except ValueError:
        raise ValidationError("invalid") from None
    return True


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """METRICS_ALLOW: comma-separated addresses or CIDR networks into networks; empty gives ().
    Raises ValueError when an item is neither."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False)
        for item in value.split(",")
        if item.strip()
    )


def _valid_networks(value: str) -> bool:
    try:
        parse_networks(value)
    except ValueError:
        raise ValidationError("invalid") from None
    return True


def read_raw(
    overrides: Mapping[str, object] | None = None,
) -> tuple[dict[str, object], dict[str, str]]:
    """Every setting's raw value and where it came from: `.env`, then the environment, then the
    mapping given to `create_app()`, each winning over the one before."""
    names = [f.name for f in fields(Settings)]
    layers: list[tuple[str, Mapping[str, object]]] = []
    env_file = PROJECT_ROOT / ".env"
    if env_file.is_file():
        layers.append((".env", dotenv_values(env_file)))
    layers.append(("the environment", os.environ))
    layers.append(("the settings given to create_app", overrides or {}))
    raw: dict[str, object] = {}
    sources: dict[str, str] = {}
    for source, values in layers:
        for name in names:
            if name in values and values[name] is not None:
                raw[name] = values[name]
                sources[name] = source
    return raw, sources


def problems(
    schema: Schema, messages: dict, raw: Mapping[str, object], sources: Mapping[str, str]
) -> list[str]:
    """One line per bad setting, in the schema's order; the value is never quoted."""
    lines = []
    for name, field in schema.fields.items():
        if name not in messages:
            continue
        accepts = field.metadata["accepts"]
        value = raw.get(name)
        where = sources.get(name, "the defaults")
        if isinstance(value, str) and not value.strip():
            default = field.metadata.get("default")
            hint = f"; remove it for the default, {default}" if default is not None else ""
            lines.append(f"bad setting {name} (from {where}) is empty: it accepts {accepts}{hint}")
        else:
            lines.append(f"bad setting {name} (from {where}): it accepts {accepts}")
    return lines


def load_or_exit() -> Settings:
    """For gunicorn's master and scripts/run: the settings, or the problem lines on stderr and
    exit status 2, before anything starts (no traceback: the lines say it all)."""
    try:
        return Settings.load()
    except ConfigError as exc:
        exc.show()
        raise SystemExit(EXIT_BAD_SETTING) from None


if __name__ == "__main__":  # python -m service.config: check the settings as the app reads them
    load_or_exit()
