"""Calendar periods in UTC: the period containing a day, the one before it, month ranges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class Period(StrEnum):
    """The spending comparisons the API offers."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


@dataclass(frozen=True)
class Span:
    """Days `first` to `last`, both included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        """How many days the span covers."""
        return (self.last - self.first).days + 1


def month_start(day: date) -> date:
    """The first day of the day's month."""
    return day.replace(day=1)


def add_months(first: date, months: int) -> date:
    """The first day of the month `months` after (or before) the month starting at `first`."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_span(first: date) -> Span:
    """The whole month starting at `first`."""
    return Span(first, add_months(first, 1) - timedelta(days=1))


def period_span(period: Period, today: date) -> Span:
    """The whole period (ISO weeks start on Monday) that contains `today`."""
    if period is Period.DAY:
        return Span(today, today)
    if period is Period.WEEK:
        first = today - timedelta(days=today.weekday())
        return Span(first, first + timedelta(days=6))
    if period is Period.MONTH:
        return month_span(month_start(today))
    return Span(date(today.year, 1, 1), date(today.year, 12, 31))


def previous_span(period: Period, span: Span) -> Span:
    """The whole period just before `span`."""
    return period_span(period, span.first - timedelta(days=1))


def parse_month(value: str) -> date:
    """`2026-11` as the first day of that month; ValueError otherwise."""
    year, sep, month = value.partition("-")
    if not (sep and len(year) == 4 and len(month) == 2 and year.isdigit() and month.isdigit()):
        raise ValueError(f"a month is YYYY-MM, not {value[:20]!r}")
    return date(int(year), int(month), 1)
