"""Figures the documents state, held to the code they describe. No database, no network."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from service import db, quota
from service.blueprints import api as api_blueprint
from service.config import Settings
from service.schemas import DEFAULT_PAGE, MAX_PAGE, MAX_STREAM

ROOT = Path(__file__).resolve().parents[2]


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_readme_stays_a_five_minute_read():
    assert len(read("README.md").splitlines()) <= 200


def test_every_setting_is_documented_with_its_default():
    operations = read("docs/operations.md")
    for field in fields(Settings):
        row = next((line for line in operations.splitlines() if f"`{field.name}`" in line), None)
        assert row is not None, f"{field.name} is not in docs/operations.md"
        default = field.default
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        shown = f"`{default}`" if default != "" else "*(empty)*"
        if field.name == "DB_TIME_ZONE":
            shown = "*(server's)*"
        if field.name == "WEB_CONCURRENCY":  # None: gunicorn's rule of thumb
            shown = "2 × cores + 1"
        assert shown in row, f"{field.name}: default {shown} not in its row: {row}"


def test_every_variable_of_the_env_example_is_documented():
    documented = read("docs/operations.md") + read("docs/monitor.md")
    names = re.findall(r"^([A-Z][A-Z0-9_]+)=", read(".env.example"), flags=re.MULTILINE)
    assert names, ".env.example lists no variable"
    assert [name for name in names if f"`{name}`" not in documented] == []


def test_retry_after_jitter_is_stated_as_the_code_draws_it():
    jitter = f"0-{quota.RETRY_JITTER_SECONDS} s"
    assert jitter in read("README.md")
    assert jitter in read("docs/api.md")


def test_export_bounds_are_stated_as_the_schema_enforces_them():
    api = read("docs/api.md")
    assert f"integer 1-{MAX_PAGE} with `format=json`" in api
    assert f"1-{MAX_STREAM:,} with `format=ndjson`" in api
    assert f"| {DEFAULT_PAGE} (`json`)" in api


def test_the_stream_chunks_are_stated_as_the_export_makes_them():
    api = " ".join(read("docs/api.md").split())
    chunk, query = api_blueprint.STREAM_PAGE, api_blueprint.STREAM_SEGMENT
    assert f"written {chunk:,} rows at a time from one database query per {query:,} rows" in api


def test_conflict_retries_are_stated_as_the_code_makes_them():
    operations = " ".join(read("docs/operations.md").split())
    first, ceiling = db.RETRY_PAUSE_FIRST * 1000, db.RETRY_PAUSE_MAX * 1000
    stated = f"a pause of {first:g} ms, doubling up to {ceiling:g} ms, half of it random"
    assert stated in operations
    assert f"up to {db.RETRY_ATTEMPTS} attempts" in operations
    changelog = " ".join(read("CHANGELOG.md").split())
    attempts = db.RETRY_ATTEMPTS
    assert f"doubling to {ceiling:g} ms (half of it random), up to {attempts} attempts" in changelog
