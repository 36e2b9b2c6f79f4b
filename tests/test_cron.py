"""Cron expressions, timezones and DST, as design.md defines them (cronie's semantics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from itinerary.cron import CronError, Schedule


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    return Schedule(expr, tz).next_n(after, count)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("*/15 * * * *", [at(2026, 3, 1, 12, 15), at(2026, 3, 1, 12, 30)]),
        ("0 9-10 * * MON", [at(2026, 3, 2, 9), at(2026, 3, 2, 10)]),
        ("0 0 1 JAN,JUL *", [at(2026, 7, 1), at(2027, 1, 1)]),
        ("@hourly", [at(2026, 3, 1, 13), at(2026, 3, 1, 14)]),
        ("@daily", [at(2026, 3, 2), at(2026, 3, 3)]),
        ("@weekly", [at(2026, 3, 8), at(2026, 3, 15)]),
        ("@monthly", [at(2026, 4, 1), at(2026, 5, 1)]),
        ("@yearly", [at(2027, 1, 1), at(2028, 1, 1)]),
    ],
)
def test_it_understands_standard_expressions(expr: str, expected: list[datetime]) -> None:
    assert fires(expr, "UTC", at(2026, 3, 1, 12, 0), 2) == expected


def test_it_runs_a_skipped_fixed_time_at_the_first_instant_after_the_gap() -> None:
    # 02:30 does not exist in New York on 2026-03-08: it runs at 03:00 EDT.
    assert fires("30 2 * * *", "America/New_York", at(2026, 3, 7, 12), 2) == [
        at(2026, 3, 8, 7, 0),
        at(2026, 3, 9, 6, 30),
    ]


def test_it_runs_a_repeated_fixed_time_once() -> None:
    assert fires("30 1 * * *", "America/New_York", at(2026, 10, 31, 12), 2) == [
        at(2026, 11, 1, 5, 30),
        at(2026, 11, 2, 6, 30),
    ]


def test_it_runs_a_wildcard_job_in_both_repeated_hours() -> None:
    assert fires("0 * * * *", "America/New_York", at(2026, 11, 1, 4), 3) == [
        at(2026, 11, 1, 5),
        at(2026, 11, 1, 6),
        at(2026, 11, 1, 7),
    ]


def test_it_follows_london_in_spring_and_autumn() -> None:
    assert fires("30 1 * * *", "Europe/London", at(2026, 3, 28, 12), 1) == [at(2026, 3, 29, 1)]
    assert fires("30 1 * * *", "Europe/London", at(2026, 10, 24, 12), 1) == [
        at(2026, 10, 25, 0, 30)
    ]


def test_it_handles_lord_howes_half_hour_shift() -> None:
    # 02:00-02:30 local is skipped on 2026-10-04: 02:15 runs at 02:30 (15:30Z).
    assert fires("15 2 * * *", "Australia/Lord_Howe", at(2026, 10, 3), 1) == [
        at(2026, 10, 3, 15, 30)
    ]
    # 01:30-02:00 local repeats on 2026-04-05: 01:45 runs once, at the first occurrence.
    assert fires("45 1 * * *", "Australia/Lord_Howe", at(2026, 4, 4), 2) == [
        at(2026, 4, 4, 14, 45),
        at(2026, 4, 5, 15, 15),
    ]


def test_it_handles_santiagos_midnight_transitions() -> None:
    # Midnight does not exist on 2026-09-06: the job runs at 01:00 -03 (04:00Z).
    assert fires("0 0 * * *", "America/Santiago", at(2026, 9, 5, 5), 1) == [at(2026, 9, 6, 4)]
    # 23:00-24:00 repeats on 2026-04-04: 23:30 runs once, at the first occurrence (-03).
    assert fires("30 23 * * *", "America/Santiago", at(2026, 4, 4, 12), 2) == [
        at(2026, 4, 5, 2, 30),
        at(2026, 4, 6, 3, 30),
    ]


@pytest.mark.parametrize(
    ("expr", "tz", "field", "words"),
    [
        ("61 * * * *", "UTC", "schedule", "minute"),
        ("* 24 * * *", "UTC", "schedule", "hour"),
        ("* * * FOO *", "UTC", "schedule", "month"),
        ("* * *", "UTC", "schedule", "5 fields"),
        ("* * * * *", "Mars/Olympus", "timezone", "unknown"),
    ],
)
def test_it_names_the_bad_field(expr: str, tz: str, field: str, words: str) -> None:
    with pytest.raises(CronError) as err:
        Schedule(expr, tz)
    assert err.value.field == field and words in err.value.reason


def test_it_describes_a_schedule_for_people() -> None:
    assert "Monday through Friday" in Schedule("30 2 * * 1-5", "Europe/Berlin").describe()
    assert Schedule("30 2 * * 1-5", "Europe/Berlin").describe().endswith("(Europe/Berlin)")
