"""What docs/operations.md and docs/api.md quote of the operator's and the client's messages is
what the code prints, word for word."""

from __future__ import annotations

import re

import pytest
from marshmallow import ValidationError

import service.config
from service.config import ConfigError, Settings, SettingsSchema
from service.schemas import ExportQuery
from testkit import ROOT

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
API = (ROOT / "docs" / "api.md").read_text()


def test_the_quoted_bad_setting_lines_are_the_real_ones(monkeypatch, tmp_path):
    for name in SettingsSchema().fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(service.config, "PROJECT_ROOT", tmp_path)
    (tmp_path / ".env").write_text("DB_PORT=abc\n")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    block = re.search(r"```\n(bad setting .*?)```", OPERATIONS, flags=re.S)
    assert block and block.group(1).splitlines() == caught.value.problems


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "0", "format": "ndjson"}])
def test_the_quoted_limit_messages_are_the_real_ones(query):
    with pytest.raises(ValidationError) as caught:
        ExportQuery().load(query)
    message = caught.value.messages["limit"][0]
    assert f"`{message}`" in API


def test_the_audit_order_and_timestamp_precision_are_stated():
    assert "ordered by id, highest first" in API
    assert "timestamps can go backwards within a page" in API
    assert "always with milliseconds (`.869Z`, `.000Z`)" in API
    assert re.search(r'"timestamp":"[^"]*T\d\d:\d\d:\d\dZ"', API) is None, "no audit stamp w/o ms"


def test_compose_and_the_sample_file_are_described_as_they_are():
    assert "MYSQL_ROOT_PASSWORD" in OPERATIONS
    assert "docker-compose.override.example.yml" in OPERATIONS
    assert "publishes MySQL on the host's port 3306" not in OPERATIONS
    assert "Loading the file again is" in OPERATIONS
