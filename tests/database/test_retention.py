"""TICKET-002, retention: `flask --app service purge-audit-logs` deletes audit rows older than
AUDIT_RETENTION_DAYS (default 90), in batches, with a UTC cutoff whatever the host's zone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pymysql
import pymysql.connections
import pytest
from freezegun import freeze_time

from service.cli import purge_audit_logs
from service.config import Settings
from testkit import DB_HOST, DB_PASS, DB_PORT, DB_USER, host_tz

pytestmark = pytest.mark.reuse_database  # its tests touch audit_logs only

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def add_rows(sql, now: datetime, ages: dict[str, timedelta]) -> None:
    """One audit row per label, `age` before `now` (naive UTC, as the service stores it)."""
    for label, age in ages.items():
        sql.run(
            "INSERT INTO audit_logs (key_id, key_prefix, method, endpoint, response_code, "
            "response_time_ms, `timestamp`) VALUES (1, 'key_AB', 'GET', %s, 200, 1, %s)",
            (label, (now - age).astimezone(UTC).replace(tzinfo=None)),
        )


def remaining(sql) -> set[str]:
    return {r["endpoint"] for r in sql.all("SELECT endpoint FROM audit_logs")}


def purge(app, *args: str):
    # `flask` pushes an app context before any command; Flask's test runner does not (see the
    # report on service/cli.py), so it is pushed here as `flask` would.
    with app.app_context():
        return app.test_cli_runner().invoke(args=["purge-audit-logs", "--pause", "0", *args])


AROUND_90_DAYS = {
    "now": timedelta(0),
    "89d": 89 * DAY,
    "90d-1s": 90 * DAY - SECOND,
    "90d": 90 * DAY,  # exactly at the cutoff: not older than 90 days, so kept
    "90d+1ms": 90 * DAY + timedelta(milliseconds=1),
    "90d+1s": 90 * DAY + SECOND,
    "91d": 91 * DAY,
    "400d": 400 * DAY,
}
OLDER_THAN_90 = {"90d+1ms", "90d+1s", "91d", "400d"}


def test_purge_deletes_exactly_the_rows_older_than_90_days(app, sql):
    assert app.config["SETTINGS"].AUDIT_RETENTION_DAYS == Settings.AUDIT_RETENTION_DAYS == 90
    add_rows(sql, NOW, AROUND_90_DAYS)
    with freeze_time(NOW):
        result = purge(app, "--batch", "2")
    assert result.exit_code == 0, result.output
    assert remaining(sql) == set(AROUND_90_DAYS) - OLDER_THAN_90
    assert "purged 4 audit row(s) older than 2025-12-15T12:00:00Z" in result.output


def test_purge_runs_under_the_plain_test_runner(runner, sql):
    add_rows(sql, NOW, {"old": 91 * DAY, "young": DAY})
    with freeze_time(NOW):
        result = runner.invoke(args=["purge-audit-logs", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert remaining(sql) == {"young"}


def test_purge_works_through_many_batches(app, sql):
    add_rows(sql, NOW, {f"old{i}": (91 + i) * DAY for i in range(7)} | {"young": DAY})
    with freeze_time(NOW):
        result = purge(app, "--batch", "2")
    assert result.exit_code == 0, result.output
    assert "purged 7 audit row(s)" in result.output
    assert remaining(sql) == {"young"}


class RecordingConnection(pymysql.connections.Connection):
    """A real connection that notes each statement and the rows it changed."""

    def __init__(self, *args, **kwargs):
        self.statements: list[tuple[str, int]] = []
        super().__init__(*args, **kwargs)

    def query(self, sql, unbuffered=False):
        changed = super().query(sql, unbuffered)
        self.statements.append((sql if isinstance(sql, str) else sql.decode(), changed))
        return changed


def recording_connection(database: str) -> RecordingConnection:
    return RecordingConnection(
        host=DB_HOST,
        port=DB_PORT,
        user=DB_USER,
        password=DB_PASS,
        database=database,
        autocommit=True,
    )


@pytest.mark.parametrize(
    ("old_rows", "batch", "deletes"),
    [(7, 2, [2, 2, 2, 1]), (6, 2, [2, 2, 2, 0]), (0, 5, [0]), (3, 100, [3])],
)
def test_purge_function_deletes_in_bounded_batches_and_returns_the_count(
    database, sql, old_rows, batch, deletes
):
    add_rows(sql, NOW, {f"old{i}": 100 * DAY + i * SECOND for i in range(old_rows)})
    add_rows(sql, NOW, {"young": DAY})
    conn = recording_connection(database)
    assert purge_audit_logs(conn, NOW - 90 * DAY, batch=batch) == old_rows
    assert [changed for _, changed in conn.statements] == deletes
    assert all(f"LIMIT {batch}" in statement for statement, _ in conn.statements)
    assert not conn.open, "the function closes the connection it was given"
    assert remaining(sql) == {"young"}


def test_days_option_overrides_the_setting(app, sql):
    add_rows(sql, NOW, {"29d": 29 * DAY, "31d": 31 * DAY, "89d": 89 * DAY})
    with freeze_time(NOW):
        result = purge(app, "--days", "30")
    assert result.exit_code == 0, result.output
    assert remaining(sql) == {"29d"}
    assert "older than 2026-02-13T12:00:00Z" in result.output


def test_retention_days_come_from_the_app_config(app_factory, sql):
    app = app_factory(AUDIT_RETENTION_DAYS=30)
    add_rows(sql, NOW, {"29d": 29 * DAY, "31d": 31 * DAY, "89d": 89 * DAY})
    with freeze_time(NOW):
        result = purge(app)
    assert result.exit_code == 0, result.output
    assert remaining(sql) == {"29d"}


def test_zero_days_is_refused(app, sql):
    add_rows(sql, NOW, {"now": timedelta(0)})
    result = purge(app, "--days", "0")
    assert result.exit_code == 2 and "--days" in result.output
    assert remaining(sql) == {"now"}


# Host zone (the process's TZ) and the database session zone (DB_TIME_ZONE): both far from UTC,
# each way. MariaDB accepts session offsets up to +13:00 only.
@pytest.fixture(params=[("Pacific/Kiritimati", "+13:00"), ("Pacific/Pago_Pago", "-11:00")])
def zones(request) -> Iterator[str]:
    """The process runs in UTC+14 or UTC-11 for the test, then gets its own zone back."""
    host, session = request.param
    with host_tz(host):
        yield session


def test_cutoff_is_utc_whatever_the_host_and_session_zones(zones, app_factory, sql):
    # No freezegun here: it would hide a naive local clock. An hour either side of the real
    # cutoff is far more than the test takes and far less than the zones' offsets.
    assert time.strftime("%z") in {"+1400", "-1100"}, "the host zone took effect"
    app = app_factory(DB_TIME_ZONE=zones)
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    add_rows(sql, now, {"kept": 90 * DAY - hour, "gone": 90 * DAY + hour})
    result = purge(app)
    assert result.exit_code == 0, result.output
    assert remaining(sql) == {"kept"}
    # The message states the cutoff in UTC.
    stated = datetime.strptime(result.output.split("older than ")[1].strip(), "%Y-%m-%dT%H:%M:%SZ")
    assert abs(stated.replace(tzinfo=UTC) - (now - 90 * DAY)) < timedelta(minutes=1)
