"""Five-field cron schedules (minute hour day-of-month month day-of-week), in UTC.

Each field takes ``*``, numbers, names (``jan``, ``mon``), lists (``1,15``), ranges
(``1-5``) and steps (``*/5``, ``10-50/10``). As in Vixie cron, when both day fields are
restricted a day matches either one; day-of-week 0 and 7 are both Sunday.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loopstack.errors import Invalid

__all__ = ["CronSchedule"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: (field name, lowest, highest, names for lowest.. in order)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
#: the most days looked back for the latest tick (a leap day every four years)
_MAX_DAYS = 366 * 4 + 1


def _number(text: str, name: str, lo: int, hi: int, names: tuple[str, ...], expr: str) -> int:
    word = text.lower()
    if names and word in names:
        return lo + names.index(word)
    if not text.isdigit():
        raise Invalid(
            f"the cron {name} must be a number from {lo} to {hi}"
            f"{' or a name like ' + names[0] if names else ''}; got {text!r} in {expr!r}",
            field="schedule",
        )
    value = int(text)
    if not lo <= value <= hi:
        raise Invalid(
            f"the cron {name} must be from {lo} to {hi}; got {value} in {expr!r}",
            field="schedule",
        )
    return value


def _parse_field(text: str, spec: tuple[str, int, int, tuple[str, ...]], expr: str) -> frozenset:
    name, lo, hi, names = spec
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) < 1:
                raise Invalid(
                    f"a cron step must be a positive number; got {step_text!r} in {expr!r}",
                    field="schedule",
                )
            step = int(step_text)
        if part == "*":
            first, last = lo, hi
        elif "-" in part:
            a, _, b = part.partition("-")
            first = _number(a, name, lo, hi, names, expr)
            last = _number(b, name, lo, hi, names, expr)
            if first > last:
                raise Invalid(
                    f"a cron range must run low to high; got {part!r} in {expr!r}",
                    field="schedule",
                )
        else:
            first = _number(part, name, lo, hi, names, expr)
            last = hi if step > 1 else first  # "5/15": from 5, every 15
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression; ``matches(t)`` and ``latest(after, until)`` in UTC.

    >>> CronSchedule.parse("*/15 9-17 * * mon-fri").matches(dt.datetime(2026, 12, 2, 9, 30))
    True
    """

    expression: str
    minutes: frozenset
    hours: frozenset
    days: frozenset
    months: frozenset
    weekdays: frozenset  #: 0 = Sunday (7 folded into 0)
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse five whitespace-separated fields; Invalid says which field is wrong."""
        if not isinstance(expression, str):
            raise Invalid(
                f"a cron schedule must be text like '*/5 * * * *'; got {expression!r} instead",
                field="schedule",
            )
        fields = expression.split()
        if len(fields) != 5:
            raise Invalid(
                "a cron schedule needs 5 fields (minute hour day-of-month month day-of-week),"
                f" like '*/5 * * * *'; got {len(fields)} in {expression!r}",
                field="schedule",
            )
        parsed = [
            _parse_field(f, spec, expression) for f, spec in zip(fields, _FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in parsed[4])
        return cls(
            " ".join(fields),
            parsed[0],
            parsed[1],
            parsed[2],
            parsed[3],
            weekdays,
            fields[2].startswith("*"),
            fields[4].startswith("*"),
        )

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def matches(self, t: dt.datetime) -> bool:
        """Whether the minute of ``t`` (UTC when naive) is a scheduled one."""
        t = _utc(t)
        return t.minute in self.minutes and t.hour in self.hours and self._day_matches(t.date())

    def latest(self, after: dt.datetime, until: dt.datetime) -> dt.datetime | None:
        """The last scheduled minute in ``(after, until]``, or None (UTC, seconds zero)."""
        after, until = _utc(after), _utc(until).replace(second=0, microsecond=0)
        day = until.date()
        for _ in range(_MAX_DAYS):
            if dt.datetime.combine(day, dt.time(23, 59), dt.UTC) <= after:
                return None
            if self._day_matches(day):
                for hour in sorted(self.hours, reverse=True):
                    for minute in sorted(self.minutes, reverse=True):
                        t = dt.datetime.combine(day, dt.time(hour, minute), dt.UTC)
                        if t > until:
                            continue
                        return t if t > after else None
            day -= dt.timedelta(days=1)
        return None


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
