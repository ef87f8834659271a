"""The pure quota rule: UTC windows, header values, what a stored counter means today."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from service import quota


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        ("2026-11-26T23:59:59.999+00:00", date(2026, 11, 26)),
        ("2026-11-27T00:00:00.000+00:00", date(2026, 11, 27)),
        # Local dates differ from the UTC date; the window follows UTC.
        ("2026-11-27T09:30:00+14:00", date(2026, 11, 26)),
        ("2026-11-26T13:30:00-11:00", date(2026, 11, 27)),
    ],
)
def test_the_window_is_the_utc_calendar_day(moment, day):
    assert quota.utc_day(at(moment)) == day
    assert quota.window_start(at(moment)) == datetime.combine(day, datetime.min.time(), UTC)
    assert quota.next_reset(at(moment)) == quota.window_start(at(moment)) + timedelta(days=1)


def test_headers_for_an_admitted_request():
    now = datetime(2026, 11, 26, 21, 0, 0, tzinfo=UTC)
    state = quota.QuotaState(limit=5, used=3, now=now)
    assert state.headers() == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Used": "3",
        "X-RateLimit-Reset": str(int(datetime(2026, 11, 27, tzinfo=UTC).timestamp())),
        "RateLimit-Policy": '"daily";q=5;w=86400',
        "RateLimit": '"daily";r=2;t=10800',
    }


def test_reset_seconds_round_up_and_never_reach_zero():
    last_ms = datetime(2026, 11, 26, 23, 59, 59, 999000, tzinfo=UTC)
    assert quota.QuotaState(limit=5, used=5, now=last_ms).seconds_to_reset == 1
    midnight = datetime(2026, 11, 27, tzinfo=UTC)
    assert quota.QuotaState(limit=5, used=0, now=midnight).seconds_to_reset == 86_400


def test_remaining_never_negative_after_a_lowered_limit():
    state = quota.QuotaState(limit=2, used=7, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert state.remaining == 0
    assert state.headers()["RateLimit"].startswith('"daily";r=0;')


def test_retry_after_points_past_the_reset_with_bounded_jitter():
    state = quota.QuotaState(limit=5, used=5, now=datetime(2026, 11, 26, 23, 0, tzinfo=UTC))
    assert state.retry_after(jitter=0) == 3600
    seen = {state.retry_after() for _ in range(300)}
    assert min(seen) >= 3600
    assert max(seen) <= 3600 + quota.RETRY_JITTER_SECONDS
    assert len(seen) > 1, "jitter spreads clients over several seconds"


@pytest.mark.parametrize(
    ("calls", "stored", "today", "used"),
    [
        (5, date(2026, 11, 26), date(2026, 11, 26), 5),
        (5, date(2026, 11, 25), date(2026, 11, 26), 0),  # yesterday's count is history
        (5, None, date(2026, 11, 26), 0),  # migrated legacy keys start afresh
        (3, date(2026, 11, 27), date(2026, 11, 26), 3),  # another instance is ahead: its day
    ],
)
def test_what_a_stored_count_means_today(calls, stored, today, used):
    assert quota.used_today(calls, stored, today) == used


def test_usage_document_and_refusal_message_name_the_reset():
    now = datetime(2026, 11, 26, 14, 27, 1, tzinfo=timezone(timedelta(hours=0)))
    state = quota.QuotaState(limit=5, used=5, now=now)
    usage = state.as_usage()
    assert usage["window_start"] == "2026-11-26T00:00:00Z"
    assert usage["reset_at"] == "2026-11-27T00:00:00Z"
    assert usage["remaining"] == 0
    message = quota.refusal_message(state)
    assert "00:00 UTC" in message and "2026-11-27T00:00:00Z" in message
