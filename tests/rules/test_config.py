"""Settings: the factory, and where settings come from (the commands are in tests/cli).

Settings come from the environment and an optional `.env` (the environment wins); the mapping
given to `create_app()` wins over both. An invalid setting refuses boot with `ConfigError`, whose
message (and printed traceback) never repeats the bad value: it could be a password.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import traceback

import pytest
from flask import Flask

import service.config
from service import create_app
from service.config import ConfigError, Settings
from testkit import BASE_SETTINGS, ROOT

SETTING_NAMES = [f.name for f in dataclasses.fields(Settings)]
SECRET = "s3cretvalue"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No setting in the environment but the key hash secret (without which nothing boots:
    tests/rules/test_key_hash_secret.py), and a project root (for `.env`) that we control."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEY_HASH_SECRET", BASE_SETTINGS["KEY_HASH_SECRET"])
    monkeypatch.setattr(service.config, "PROJECT_ROOT", tmp_path)
    return tmp_path


def printed(exc: BaseException) -> str:
    """What a traceback printer (gunicorn's, pytest's) would show for this exception."""
    return "".join(traceback.format_exception(exc))


def test_create_app_builds_with_defaults_and_opens_no_connection(clean_env):
    app = create_app()
    assert isinstance(app, Flask)
    settings = app.config["SETTINGS"]
    assert (settings.DB_USER, settings.DB_HOST, settings.DB_PORT, settings.DB_NAME) == (
        "root",
        "127.0.0.1",
        3306,
        "wikimedia_prod",
    )
    assert settings.TRUSTED_PROXIES == 0
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/health", "/ready", "/api/export", "/api/import", "/api/audit"} <= routes
    # Nothing is opened at import or build time: connections are made per worker on first use.
    assert getattr(app.extensions["db"]._local, "conn", None) is None
    assert app.extensions["audit"]._thread is None


def test_dotenv_is_read_when_present(clean_env):
    (clean_env / ".env").write_text("DB_NAME=from_dotenv\nDB_PORT=3307\nTRUSTED_PROXIES=2\n")
    settings = Settings.load()
    assert settings.DB_NAME == "from_dotenv"
    assert settings.DB_PORT == 3307  # coerced to the field's type
    assert settings.TRUSTED_PROXIES == 2


def test_environment_wins_over_dotenv(clean_env, monkeypatch):
    (clean_env / ".env").write_text("DB_NAME=from_dotenv\nDB_PORT=3307\n")
    monkeypatch.setenv("DB_NAME", "from_env")
    settings = Settings.load()
    assert settings.DB_NAME == "from_env"
    assert settings.DB_PORT == 3307  # still from .env: only the variables set in the env win


def test_mapping_wins_over_environment_and_dotenv(clean_env, monkeypatch):
    (clean_env / ".env").write_text("DB_NAME=from_dotenv\nDB_PORT=3307\nDB_USER=dotenv_user\n")
    monkeypatch.setenv("DB_NAME", "from_env")
    monkeypatch.setenv("DB_PORT", "3308")
    settings = Settings.load({"DB_NAME": "from_mapping"})
    assert settings.DB_NAME == "from_mapping"
    assert settings.DB_PORT == 3308
    assert settings.DB_USER == "dotenv_user"
    app = create_app({"DB_NAME": "from_mapping", "DB_PORT": 3309})
    assert app.config["SETTINGS"].DB_NAME == "from_mapping"
    assert app.config["SETTINGS"].DB_PORT == 3309


def test_env_example_documents_every_setting_and_boots(clean_env):
    example = ROOT / ".env.example"
    documented = {
        line.split("=", 1)[0].strip()
        for line in example.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert set(SETTING_NAMES) <= documented
    assert {"PORT", "WEB_CONCURRENCY"} <= documented
    shutil.copy(example, clean_env / ".env")
    settings = Settings.load()  # a copied .env.example is a valid configuration
    assert settings.DB_NAME == "wikimedia_prod"


# ---------------------------------------------------------------------------------------------
# Invalid settings refuse boot, without echoing the value


def test_bad_db_port_from_environment_refuses_boot_without_echo(clean_env, monkeypatch):
    monkeypatch.setenv("DB_PORT", SECRET)
    with pytest.raises(ConfigError) as caught:
        create_app()
    assert "DB_PORT" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert SECRET not in printed(caught.value)


def test_bad_db_port_from_dotenv_refuses_boot_without_echo(clean_env):
    (clean_env / ".env").write_text(f"DB_PORT={SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert "DB_PORT" in str(caught.value)
    assert SECRET not in printed(caught.value)


def test_bad_db_port_from_mapping_refuses_boot_without_echo(clean_env):
    with pytest.raises(ConfigError) as caught:
        create_app({**BASE_SETTINGS, "DB_PORT": SECRET})
    assert SECRET not in printed(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PORT", "0"),
        ("DB_PORT", "70000"),
        ("DB_NAME", "s3cret-value;DROP"),
        ("TRUSTED_PROXIES", "-1"),
        ("TRUSTED_PROXIES", "s3cretproxy"),
        ("MAX_BODY_BYTES", "10"),
        ("AUDIT_BUFFER_SIZE", "0"),
        ("AUDIT_FLUSH_INTERVAL", "0"),
        ("AUDIT_FLUSH_INTERVAL", "5"),
        ("AUDIT_RETENTION_DAYS", "-1"),
        ("DB_RETRY_AFTER", "-1"),
        ("DB_CONNECT_TIMEOUT", "s3cretsecs"),
        # Accepted at boot, these would fail every request later (PyMySQL refuses a timeout <= 0).
        ("DB_CONNECT_TIMEOUT", "0"),
        ("DB_READ_TIMEOUT", "-1"),
        ("DB_WRITE_TIMEOUT", "0"),
        # logging refuses an unknown level with a ValueError that quotes it.
        ("LOG_LEVEL", "s3cretlevel"),
    ],
)
def test_invalid_setting_refuses_boot_with_config_error(clean_env, name, value):
    with pytest.raises(ConfigError) as caught:
        create_app({**BASE_SETTINGS, name: value})
    assert name in str(caught.value)
    if value.startswith("s3cret"):
        assert value not in printed(caught.value)


@pytest.mark.parametrize("level", ["warning", "Debug"])
def test_log_level_in_another_case_boots_or_is_a_config_error(clean_env, level):
    # Operators often write `info`; logging only knows `INFO`. Accept it (preferred) or refuse it
    # like any other bad setting: never a bare ValueError from logging when a worker boots.
    try:
        create_app({**BASE_SETTINGS, "LOG_LEVEL": level})
    except ConfigError as exc:
        assert "LOG_LEVEL" in str(exc)
    else:
        assert logging.getLogger().level == logging.getLevelName(level.upper())
