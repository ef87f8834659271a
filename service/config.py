"""Settings from the environment (and an optional `.env`), validated once at boot.

Every setting is listed in `.env.example` with its default. The environment wins over `.env`;
tests pass a mapping to `create_app()` which wins over both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_OFFSET = re.compile(r"^[+-](?:0\d|1[0-3]):[0-5]\d$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting is missing or malformed: the service refuses to boot."""


@dataclass(frozen=True)
class Settings:
    DB_USER: str = "root"
    DB_PASS: str = ""
    DB_HOST: str = "127.0.0.1"
    DB_PORT: int = 3306
    # Several database hosts (a Galera cluster's nodes), comma-separated host:port, tried in order:
    # when the current one is lost, the service moves to the next. Empty: DB_HOST and DB_PORT.
    DB_HOSTS: str = ""
    DB_NAME: str = "wikimedia_prod"
    # Optional session time zone for the service's connections (e.g. "+13:00"). Quota and audit
    # never depend on it; it exists so tests can prove that.
    DB_TIME_ZONE: str = ""
    DB_CONNECT_TIMEOUT: float = 3.0
    DB_READ_TIMEOUT: float = 10.0
    DB_WRITE_TIMEOUT: float = 10.0
    # Number of reverse proxies in front of the service whose X-Forwarded-* headers are trusted.
    TRUSTED_PROXIES: int = 0
    # Largest accepted request body, in bytes (imports); larger bodies get 413.
    MAX_BODY_BYTES: int = 64 * 1024 * 1024
    AUDIT_RETENTION_DAYS: int = 90
    # Audit rows are buffered per worker and written in batches: at most this many wait in memory.
    AUDIT_BUFFER_SIZE: int = 10_000
    AUDIT_FLUSH_INTERVAL: float = 0.5
    # Seconds a client is told to wait (Retry-After) when the database cannot be reached.
    DB_RETRY_AFTER: int = 5
    LOG_LEVEL: str = "INFO"

    @classmethod
    def load(cls, overrides: Mapping[str, object] | None = None) -> Settings:
        env_file = PROJECT_ROOT / ".env"
        raw: dict[str, object] = {}
        if env_file.is_file():
            raw.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        raw.update(os.environ)
        raw.update(overrides or {})
        values = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            values[f.name] = _coerce(f.name, raw[f.name], type(f.default))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.DB_PORT < 65536:
            raise ConfigError("DB_PORT must be between 1 and 65535")
        parse_db_hosts(self.DB_HOSTS)
        if not self.DB_NAME.replace("_", "").isalnum():
            raise ConfigError("DB_NAME may hold only letters, digits and underscores")
        for name in ("TRUSTED_PROXIES", "DB_RETRY_AFTER"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.AUDIT_RETENTION_DAYS < 1:
            raise ConfigError("AUDIT_RETENTION_DAYS must be at least 1 (0 would purge every row)")
        if self.MAX_BODY_BYTES < 1024:
            raise ConfigError("MAX_BODY_BYTES must be at least 1024")
        for name in ("DB_CONNECT_TIMEOUT", "DB_READ_TIMEOUT", "DB_WRITE_TIMEOUT"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(f"{name} must be a number of seconds above 0 (at most 3600)")
        if self.DB_TIME_ZONE and not _OFFSET.match(self.DB_TIME_ZONE):
            raise ConfigError("DB_TIME_ZONE must be empty or an offset such as +13:00")
        if self.LOG_LEVEL.upper() not in _LOG_LEVELS:
            raise ConfigError("LOG_LEVEL must be one of " + ", ".join(_LOG_LEVELS))
        if self.AUDIT_BUFFER_SIZE < 1 or not 0 < self.AUDIT_FLUSH_INTERVAL <= 1:
            raise ConfigError("AUDIT_BUFFER_SIZE must be >= 1, AUDIT_FLUSH_INTERVAL in (0, 1]")


    @property
    def db_addresses(self) -> tuple[tuple[str, int], ...]:
        """The database servers to try, in order: DB_HOSTS, or else DB_HOST and DB_PORT."""
        return parse_db_hosts(self.DB_HOSTS) or ((self.DB_HOST, self.DB_PORT),)


_HOST_PORT = re.compile(r"^([A-Za-z0-9_.\-]{1,255}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")


def parse_db_hosts(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (an IPv6 address in brackets) into pairs; empty gives ()."""
    addresses = []
    for item in value.split(","):
        item = item.strip()
        if not item and not value.strip():
            continue
        match = _HOST_PORT.match(item)
        if not match or not 0 < int(match[2]) < 65536:
            # Never echo the value: settings are not logged.
            raise ConfigError("DB_HOSTS must be a comma-separated list of host:port")
        addresses.append((match[1].strip("[]"), int(match[2])))
    if len(set(addresses)) != len(addresses):
        raise ConfigError("DB_HOSTS lists a host:port twice")
    return tuple(addresses)


def _coerce(name: str, value: object, kind: type) -> object:
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).strip())
    except ValueError:
        # Never echo the value: it could be a password.
        raise ConfigError(f"{name} must be of type {kind.__name__}") from None
