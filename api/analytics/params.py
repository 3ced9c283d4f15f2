"""Query parameters of the analytics routes: bounded date ranges and categories."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from activities.analytics.periods import Span, month_span, month_start
from api.analytics.errors import InvalidRange


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidRange(f"`{name}` must be a date like 2026-11-01", parameter=name) from exc


def day_range(
    from_: str | None, to: str | None, today: date, max_days: int, *, required: bool = False
) -> Span:
    """Both bounds inclusive; neither given: this month (unless `required`). One bound alone
    (unbounded), an inverted range or one longer than `max_days` is a 422."""
    if from_ is None and to is None and not required:
        return month_span(month_start(today))
    if from_ is None or to is None:
        raise InvalidRange("give both `from` and `to`: an open-ended range is not served")
    first, last = _day(from_, "from"), _day(to, "to")
    if first > last:
        raise InvalidRange("`from` must not be after `to`")
    if (last - first).days + 1 > max_days:
        raise InvalidRange(f"a range may cover at most {max_days} days", max_days=max_days)
    return Span(first, last)


def instants(span: Span) -> tuple[datetime, datetime]:
    """The span as a half-open UTC interval [first 00:00, day after last 00:00)."""
    start = datetime.combine(span.first, time.min, tzinfo=UTC)
    try:
        end = datetime.combine(span.last + timedelta(days=1), time.min, tzinfo=UTC)
    except OverflowError as exc:
        raise InvalidRange("`to` is out of range") from exc
    return start, end
