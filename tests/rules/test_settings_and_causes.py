"""Pure rules: the settings schema's one-line problems, database errors in words, and the outage
log that speaks once per change of state plus a reminder."""

from __future__ import annotations

import logging

import pymysql
import pytest
from freezegun import freeze_time

import service.config
from service.config import ConfigError, Settings, SettingsSchema
from service.db import OutageLog, explain

SETTINGS = Settings(DB_USER="svc", DB_HOST="db.example", DB_PORT=3307, DB_NAME="wme")


@pytest.fixture(autouse=True)
def no_dotenv(monkeypatch, tmp_path):
    monkeypatch.setattr(service.config, "PROJECT_ROOT", tmp_path)
    for name in SettingsSchema().fields:
        monkeypatch.delenv(name, raising=False)
    # The one setting without a default (tests/rules/test_key_hash_secret.py covers its absence).
    monkeypatch.setenv("KEY_HASH_SECRET", "tests-only-key-hash-secret-0123456789abcdef")


def test_one_schema_holds_every_setting_of_the_app_and_of_gunicorn():
    names = set(SettingsSchema().fields)
    assert {
        "PORT",
        "BIND_HOST",
        "WEB_CONCURRENCY",
        "GUNICORN_TIMEOUT",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "DB_PORT",
        "LOG_LEVEL",
    } <= names
    assert names == set(Settings.__dataclass_fields__)


def test_defaults_and_empty_web_concurrency():
    settings = Settings.load({"WEB_CONCURRENCY": ""})
    assert (settings.PORT, settings.BIND_HOST, settings.WEB_CONCURRENCY) == (8080, "0.0.0.0", None)
    assert (settings.GUNICORN_TIMEOUT, settings.GUNICORN_GRACEFUL_TIMEOUT) == (60, 30)
    assert Settings.load({"LOG_LEVEL": "debug"}).LOG_LEVEL == "DEBUG"


def test_every_problem_is_one_line_naming_the_setting_and_its_source(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "s3cret")
    with pytest.raises(ConfigError) as caught:
        Settings.load({"DB_PORT": "s3cret", "GUNICORN_TIMEOUT": " "})
    assert caught.value.problems == [
        "bad setting DB_PORT (from the settings given to create_app): it accepts a whole "
        "number from 1 to 65535",
        "bad setting WEB_CONCURRENCY (from the environment): it accepts empty (2 x cores + 1), "
        "or a whole number of workers from 1 to 256",
        "bad setting GUNICORN_TIMEOUT (from the settings given to create_app) is empty: it "
        "accepts a whole number of seconds from 1 to 3600; remove it for the default, 60",
    ]
    assert str(caught.value) == "\n".join(caught.value.problems)
    assert "s3cret" not in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("code", "message", "words"),
    [
        (
            1045,
            "Access denied for user 'svc'@'x' (using password: YES)",
            "access denied for user svc at db.example:3307 (check DB_USER and DB_PASS)",
        ),
        (
            1698,
            "Access denied for user 'svc'@'x'",
            "access denied for user svc at db.example:3307 (check DB_USER and DB_PASS)",
        ),
        (
            1049,
            "Unknown database 'wme'",
            "unknown database wme at db.example:3307 (create it: flask --app service migrate)",
        ),
        (
            2003,
            "Can't connect to MySQL server on 'db.example' ([Errno 111] Connection refused)",
            "connection refused at db.example:3307 (no server listens there)",
        ),
        (
            2003,
            "Can't connect to MySQL server on 'db.example' (timed out)",
            "timed out connecting to db.example:3307 after 3 s",
        ),
        (
            2003,
            "Can't connect to MySQL server on 'db.example' ([Errno -2] Name or service not known)",
            "cannot resolve the host db.example (check DB_HOST)",
        ),
        (
            2013,
            "Lost connection to MySQL server during query",
            "lost the connection to db.example:3307",
        ),
    ],
)
def test_database_errors_are_named_in_words(code, message, words):
    assert explain(pymysql.err.OperationalError(code, message), SETTINGS) == words


def test_server_text_never_reaches_the_explanation():
    exc = pymysql.err.OperationalError(1064, "near 'key_ABC123' at line 1")
    assert "key_ABC123" not in explain(exc, SETTINGS)


def test_an_outage_is_logged_once_per_change_and_reminded_every_minute(caplog):
    caplog.set_level(logging.INFO, logger="service.db")
    outages = OutageLog("requests")
    with freeze_time("2026-12-02 10:00:00") as clock:
        for _ in range(100):
            outages.failed("access denied for user svc")
            clock.tick(0.25)  # 25 s of attempts
        assert len(caplog.records) == 1
        clock.tick(40)
        outages.failed("access denied for user svc")  # 65 s in: the reminder
        outages.failed("connection refused at db:3306")  # a new cause: at once
        outages.recovered()
        outages.recovered()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "database unavailable (requests): access denied for user svc",
        "database still unavailable (requests): access denied for user svc",
        "database unavailable (requests): connection refused at db:3306",
        "database available again (requests); it was: connection refused at db:3306",
    ]
    assert caplog.records[1].failures == 100  # attempts since the previous line
