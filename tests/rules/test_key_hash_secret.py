"""The keyed hash of API keys and the secret it needs: no default, one clear line when missing."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

import service.config
from service import create_app, keys
from service.config import ConfigError, Settings
from testkit import BASE_SETTINGS, ROOT


@pytest.fixture
def no_secret(monkeypatch, tmp_path):
    for name in ("KEY_HASH_SECRET", "KEY_HASH_SECRET_PREVIOUS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(service.config, "PROJECT_ROOT", tmp_path)  # no .env either


def test_without_the_secret_the_service_refuses_to_start_with_one_line(no_secret):
    settings = {k: v for k, v in BASE_SETTINGS.items() if k != "KEY_HASH_SECRET"}
    with pytest.raises(ConfigError) as caught:
        create_app(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("KEY_HASH_SECRET is not set: the service refuses to start")


def test_a_short_secret_is_refused(no_secret):
    with pytest.raises(ConfigError, match=r"^bad setting KEY_HASH_SECRET \(.*at least 32 char"):
        Settings.load({"KEY_HASH_SECRET": "x" * 31})
    with pytest.raises(ConfigError, match=r"^bad setting KEY_HASH_SECRET_PREVIOUS \(.*at least 32"):
        Settings.load({"KEY_HASH_SECRET": "x" * 32, "KEY_HASH_SECRET_PREVIOUS": "short"})


def test_the_public_sample_secret_boots_with_a_warning(no_secret, caplog):
    with caplog.at_level(logging.WARNING):
        create_app({**BASE_SETTINGS, "KEY_HASH_SECRET": keys.SAMPLE_KEY_HASH_SECRET})
    assert any(getattr(r, "event", None) == "sample_secret" for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        create_app(BASE_SETTINGS)
    assert not any(getattr(r, "event", None) == "sample_secret" for r in caplog.records)


def test_hash_key_is_hmac_sha256_under_the_secret():
    secret = "a" * 40
    expected = hmac.new(secret.encode(), b"key_ABC123", hashlib.sha256).hexdigest()
    assert keys.hash_key("key_ABC123", secret) == expected
    assert keys.hash_key("key_ABC123", "b" * 40) != expected
    assert expected != hashlib.sha256(b"key_ABC123").hexdigest()
    with pytest.raises(ValueError):
        keys.hash_key("key_ABC123", "")


def test_sql_placeholders_are_filled_by_the_same_function():
    text = "INSERT INTO t VALUES ({{key_hash:key_ABC123}}, {{key_hash:wk_x-Y.z}});"
    rendered = keys.render_key_hashes(text, "s" * 40)
    assert rendered == (
        f"INSERT INTO t VALUES ('{keys.hash_key('key_ABC123', 's' * 40)}', "
        f"'{keys.hash_key('wk_x-Y.z', 's' * 40)}');"
    )


@pytest.mark.parametrize(
    ("key", "weak"),
    [("key_ABC123", True), ("k" * 27, True), ("k" * 28, False), ("wk_" + "x" * 32, False)],
)
def test_a_key_is_weak_below_128_bits_beyond_its_displayed_prefix(key, weak):
    assert keys.is_weak(key) is weak


def test_sample_database_sql_holds_the_sample_keys_hashed_under_the_public_sample_secret():
    text = (ROOT / "sql" / "sample_database.sql").read_text(encoding="utf-8")
    for key in ("key_ABC123", "key_DEF456"):
        assert keys.hash_key(key, keys.SAMPLE_KEY_HASH_SECRET) in text
    assert "{{key_hash:" not in text
    assert f"KEY_HASH_SECRET={keys.SAMPLE_KEY_HASH_SECRET}" in text  # said in its header
