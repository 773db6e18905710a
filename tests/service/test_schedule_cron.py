"""Cron parsing and due times: both DST nights of Europe/Berlin, bad values named, words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.scheduler.clock import CompressedClock
from service.scheduler.cron import Cron, CronError


def _between(cron: Cron, start: datetime, end: datetime) -> list[str]:
    out = []
    for due in cron.times_after(start):
        if due >= end:
            break
        out.append(due.astimezone(cron.zone).isoformat())
    return out


def test_spring_forward_night_runs_once_at_three() -> None:
    # 2026-03-29: Berlin clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    start, end = datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC)
    assert _between(cron, start, end) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_fall_back_night_runs_once_at_the_first_half_past_two() -> None:
    # 2026-10-25: Berlin clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    start, end = datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC)
    assert _between(cron, start, end) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    # Restarting from the first 02:30 (as the scheduler does after firing it) skips the second.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert cron.next_after(first) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_hourly_schedule_keeps_both_real_half_past_twos() -> None:
    cron = Cron.parse("30 * * * *", "Europe/Berlin")
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    assert _between(cron, start, start + timedelta(hours=3)) == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
    ]


@pytest.mark.parametrize(("expression", "zone", "after", "due"), [
    # 01:10 UTC is 02:10 in Berlin's second pass of 02:00-03:00 (CET): the day's 02:30 ran in the
    # first pass, at 00:30 UTC. cronsim, starting from the wall clock, gave 00:30 UTC back.
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10", "2026-10-26T01:30"),
    ("10,50 2 * * *", "Europe/Berlin", "2026-10-25T01:10", "2026-10-26T01:10"),
    ("30 * * * *", "Europe/Berlin", "2026-10-25T01:10", "2026-10-25T01:30"),  # the second 02:30
    ("45 1 * * *", "America/New_York", "2026-11-01T06:10", "2026-11-02T06:45"),
])
def test_next_after_on_a_fall_back_night_is_never_before_now(
    expression: str, zone: str, after: str, due: str
) -> None:
    """Creating or resuming a schedule at such an instant stored a due time already recorded:
    its run hit UNIQUE (schedule_id, due_at) and the schedule never fired again."""
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    found = Cron.parse(expression, zone).next_after(start)
    assert found == datetime.fromisoformat(due).replace(tzinfo=UTC) and found > start


def test_due_times_are_utc_and_strictly_after() -> None:
    cron = Cron.parse("*/15 * * * *", "UTC")
    at = datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    assert cron.next_after(at) == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    assert cron.next_after(at).tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 2 * * *", "cron: got '61 2 * * *': Bad minute; use five fields"),
        ("* * * *", "cron: got '* * * *' (4 fields); use five fields"),
        ("* * * * * *", "cron: got '* * * * * *' (6 fields); use five fields"),
        ("@daily", "cron: got '@daily' (1 fields); use five fields"),
        ("0 0 31 2 *", "cron: got '0 0 31 2 *': Bad day-of-month; use five fields"),
    ],
)
def test_bad_cron_names_the_value(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        Cron.parse(expression, "UTC")
    assert caught.value.field == "cron"
    assert str(caught.value).startswith(message)
    assert str(caught.value).endswith(
        "use five fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * *'"
    )


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", " UTC", "/etc/localtime"])
def test_bad_zone_names_the_value(zone: str) -> None:
    with pytest.raises(CronError) as caught:
        Cron.parse("0 * * * *", zone)
    assert caught.value.field == "timezone"
    assert caught.value.detail == (
        f"got {zone!r}; use an IANA time zone name such as 'UTC', 'Europe/Berlin' or "
        "'America/New_York'"
    )


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("30 2 * * *", "At 02:30 every day (Europe/Berlin)"),
        (
            "*/15 * * * 1-5",
            "Every 15th minute of every hour on Monday through Friday (Europe/Berlin)",
        ),
    ],
)
def test_describe_in_words(expression: str, words: str) -> None:
    assert Cron.parse(expression, "Europe/Berlin").describe() == words


def test_compressed_clock() -> None:
    origin = datetime(2026, 3, 28, 22, tzinfo=UTC)
    clock = CompressedClock(origin=origin, epoch=1000.0, speed=60.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("time.time", lambda: 1010.5)
        assert clock() == origin + timedelta(minutes=10, seconds=30)
    with pytest.raises(ValueError, match="needs a time zone"):
        CompressedClock(origin=datetime(2026, 1, 1), epoch=0, speed=1)
