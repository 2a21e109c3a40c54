"""Cron schedules: five fields with *, lists, ranges, steps and names; the latest tick."""

from __future__ import annotations

import datetime as dt

import pytest

from loopstack.errors import Invalid
from loopstack.loop import CronSchedule


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_fields_lists_ranges_steps_and_names() -> None:
    s = CronSchedule.parse("*/15 9-17 * * mon-fri")
    assert s.minutes == {0, 15, 30, 45} and s.hours == set(range(9, 18))
    assert s.matches(at(2026, 12, 2, 9, 30))  # a Wednesday
    assert not s.matches(at(2026, 12, 5, 9, 30))  # a Saturday
    assert not s.matches(at(2026, 12, 2, 9, 31))
    assert CronSchedule.parse("5,10-20/5 0 1 jan,JUL *").minutes == {5, 10, 15, 20}
    assert CronSchedule.parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert CronSchedule.parse("5/20 * * * *").minutes == {5, 25, 45}


def test_both_day_fields_restricted_match_either_as_in_vixie_cron() -> None:
    s = CronSchedule.parse("0 12 13 * fri")
    assert s.matches(at(2026, 12, 13, 12, 0))  # the 13th, a Sunday
    assert s.matches(at(2026, 12, 4, 12, 0))  # a Friday, the 4th
    assert not s.matches(at(2026, 12, 5, 12, 0))


def test_latest_tick_in_a_half_open_interval() -> None:
    s = CronSchedule.parse("*/5 * * * *")
    assert s.latest(at(2026, 1, 1, 0, 0), at(2026, 1, 1, 0, 12, 59)) == at(2026, 1, 1, 0, 10)
    assert s.latest(at(2026, 1, 1, 0, 10), at(2026, 1, 1, 0, 14)) is None  # 00:10 seen
    yearly = CronSchedule.parse("0 0 1 1 *")
    assert yearly.latest(at(2025, 6, 1), at(2026, 12, 6)) == at(2026, 1, 1)
    assert yearly.latest(at(2026, 1, 1), at(2026, 12, 6)) is None
    leap = CronSchedule.parse("0 0 29 2 *")
    assert leap.latest(at(2024, 3, 1), at(2028, 3, 1)) == at(2028, 2, 29)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("* * * *", "needs 5 fields"),
        ("60 * * * *", "minute must be from 0 to 59; got 60"),
        ("* 24 * * *", "hour must be from 0 to 23"),
        ("* * 0 * *", "day of month must be from 1 to 31"),
        ("* * * 13 *", "month must be from 1 to 12"),
        ("* * * foo *", "month must be a number"),
        ("*/0 * * * *", "step must be a positive number"),
        ("30-10 * * * *", "range must run low to high"),
    ],
)
def test_bad_schedules_say_what_is_wrong(expr: str, says: str) -> None:
    with pytest.raises(Invalid, match=says):
        CronSchedule.parse(expr)
