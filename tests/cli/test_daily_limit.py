"""`--daily-limit` takes 0 to the column's maximum; anything else is one line and exit 1."""

from __future__ import annotations

import pytest

from service.cli import DAILY_LIMIT, MAX_DAILY_LIMIT


@pytest.mark.parametrize(
    "value", ["99999999999", "2147483648", "-1", "abc", "1.5", "", "٣", "+5", "5_0"]
)
def test_a_limit_outside_the_column_is_one_line_and_no_key(runner, seeded, value):
    before = seeded.value("SELECT COUNT(*) FROM api_keys")
    result = runner.invoke(args=["keys", "create", "--user-id", "1", "--daily-limit", value])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: --daily-limit must be a whole number from 0 to {MAX_DAILY_LIMIT}"]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert seeded.value("SELECT COUNT(*) FROM api_keys") == before


@pytest.mark.parametrize("value", ["0", "1", str(MAX_DAILY_LIMIT)])
def test_limits_within_the_column_are_stored(runner, seeded, value):
    result = runner.invoke(args=["keys", "create", "--user-id", "1", "--daily-limit", value])
    assert result.exit_code == 0, result.output
    assert seeded.value("SELECT MAX(rate_limit) FROM api_keys WHERE id > 2") == int(value)


def test_the_validator_is_shared_and_converts():
    assert DAILY_LIMIT.convert("42", None, None) == 42
    assert DAILY_LIMIT.convert(7, None, None) == 7
