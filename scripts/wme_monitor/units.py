"""Milliseconds, numbers and times the way every output of the monitor writes them."""

from datetime import UTC, datetime


def round_ms(value: float | None) -> float | None:
    """Durations are reported in ms rounded to 0.1; None stays None."""
    return None if value is None else round(value, 1)


def fmt_num(value: float) -> str:
    """1500 -> "1500", 1500.0 -> "1500", 12.25 -> "12.25"."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_rfc3339(dt: datetime) -> str:
    """UTC with milliseconds: 2026-11-26T07:15:30.123Z."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
