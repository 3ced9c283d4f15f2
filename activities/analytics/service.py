"""The analytics answers: dashboard, spending against the previous period, categories, trends.

Each reads the rollup with one grouped query (plus balances and scheduled payments for the
dashboard) inside the caller's session; none scans `transactions`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.analytics.figures import (
    TRANSFER,
    CurrencySums,
    categories_of,
    flows_of,
    grouped_sums,
    savings_rate,
)
from activities.analytics.periods import (
    Period,
    Span,
    add_months,
    month_start,
    period_span,
    previous_span,
)
from models.analytics.schemas import (
    CategoryBreakdown,
    CategoryTrend,
    CurrencyCategories,
    CurrencyDashboard,
    CurrencySpending,
    Dashboard,
    MonthFlows,
    PeriodFigures,
    SpendingComparison,
    TrendPoint,
    Trends,
    UpcomingPayment,
)
from models.money import Money

TOP_CATEGORIES = 5
RECENT_MONTHS = 6
UPCOMING_PAYMENTS = 5

_BALANCES = text(
    "SELECT currency, sum(posted) AS posted, sum(posted - held) AS available, count(*) AS n "
    "FROM ledger_accounts WHERE owner_user_id = :user_id AND kind = 'customer' "
    "AND status = 'open' GROUP BY currency"
)
_UPCOMING = text(
    "SELECT id, amount, currency, description, execute_at FROM payments "
    "WHERE user_id = :user_id AND status = 'scheduled' AND execute_at >= :now "
    "ORDER BY execute_at, id LIMIT :limit"
)


def _month_label(first: date) -> str:
    return f"{first.year:04d}-{first.month:02d}"


async def dashboard(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> Dashboard:
    """Balances per currency, month-to-date flows, top categories, savings rate, upcoming
    scheduled payments (days in UTC)."""
    today = now.date()
    this_month = month_start(today)
    first = add_months(this_month, -(RECENT_MONTHS - 1))
    sums = await grouped_sums(session, user_id, first, today, by_month=True)
    balances = {row.currency: row for row in await session.execute(_BALANCES, {"user_id": user_id})}
    currencies = sorted(set(balances) | {cur for cur, _ in sums})
    months = [add_months(first, n) for n in range(RECENT_MONTHS)]
    out: list[CurrencyDashboard] = []
    for cur in currencies:
        mtd = sums.get((cur, this_month), CurrencySums())
        bal = balances.get(cur)
        out.append(
            CurrencyDashboard(
                currency=cur,
                balance=Money.of(int(bal.posted) if bal else 0, cur),
                available=Money.of(int(bal.available) if bal else 0, cur),
                accounts=int(bal.n) if bal else 0,
                month_to_date=flows_of(mtd, cur),
                top_categories=[
                    c for c in categories_of(mtd, cur) if c.category != TRANSFER and c.count
                ][:TOP_CATEGORIES],
                savings_rate=savings_rate(mtd),
                recent_months=[
                    MonthFlows(
                        month=_month_label(m),
                        flows=flows_of(sums.get((cur, m), CurrencySums()), cur),
                    )
                    for m in months
                ],
            )
        )
    upcoming = await session.execute(
        _UPCOMING, {"user_id": user_id, "now": now, "limit": UPCOMING_PAYMENTS}
    )
    return Dashboard(
        as_of=now,
        month=_month_label(this_month),
        currencies=out,
        upcoming_payments=[
            UpcomingPayment(
                payment_id=row.id,
                amount=Money.of(int(row.amount), row.currency),
                description=row.description,
                execute_at=row.execute_at,
            )
            for row in upcoming
        ],
    )


def _figures(sums: CurrencySums, cur: str, span: Span) -> PeriodFigures:
    return PeriodFigures(
        first_day=span.first,
        last_day=span.last,
        flows=flows_of(sums, cur),
        categories=categories_of(sums, cur),
    )


async def _span_sums(
    session: AsyncSession, user_id: uuid.UUID, span: Span
) -> dict[str, CurrencySums]:
    grouped = await grouped_sums(session, user_id, span.first, span.last)
    return {cur: sums for (cur, _), sums in grouped.items()}


async def spending(
    session: AsyncSession, user_id: uuid.UUID, period: Period, today: date
) -> SpendingComparison:
    """This period up to today against the whole previous period and its first as many days."""
    whole = period_span(period, today)
    current = Span(whole.first, today)
    previous = previous_span(period, whole)
    previous_to_date = Span(
        previous.first, min(previous.last, previous.first + (today - whole.first))
    )
    now_sums = await _span_sums(session, user_id, current)
    prev_sums = await _span_sums(session, user_id, previous)
    prev_to_date = await _span_sums(session, user_id, previous_to_date)
    out: list[CurrencySpending] = []
    for cur in sorted(set(now_sums) | set(prev_sums)):
        a = now_sums.get(cur, CurrencySums())
        b = prev_to_date.get(cur, CurrencySums())
        change = a.spending() - b.spending()
        out.append(
            CurrencySpending(
                currency=cur,
                current=_figures(a, cur, current),
                previous=_figures(prev_sums.get(cur, CurrencySums()), cur, previous),
                previous_to_date=_figures(b, cur, previous_to_date),
                change=Money.of(change, cur),
                change_ratio=round(change / b.spending(), 4) if b.spending() else None,
            )
        )
    return SpendingComparison(period=period.value, today=today, currencies=out)


async def categories(
    session: AsyncSession, user_id: uuid.UUID, span: Span, currency: str | None
) -> CategoryBreakdown:
    """Spending and income per category between two days, per currency."""
    grouped = await grouped_sums(session, user_id, span.first, span.last, currency=currency)
    return CategoryBreakdown(
        first_day=span.first,
        last_day=span.last,
        currencies=[
            CurrencyCategories(
                currency=cur, flows=flows_of(sums, cur), categories=categories_of(sums, cur)
            )
            for (cur, _), sums in sorted(grouped.items())
        ],
    )


def _average(values: list[int]) -> int:
    """The mean in minor units, rounded half to even (no floats for money)."""
    mean = Decimal(sum(values)) / Decimal(len(values))
    return int(mean.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


async def trends(
    session: AsyncSession,
    user_id: uuid.UUID,
    today: date,
    *,
    months: int,
    window: int,
    category: str | None,
) -> Trends:
    """Monthly spending per category for the last `months` months (this one included), each
    with the trailing `window`-month moving average (earlier months are read for it)."""
    this_month = month_start(today)
    first_shown = add_months(this_month, -(months - 1))
    first_read = add_months(first_shown, -(window - 1))
    grouped = await grouped_sums(session, user_id, first_read, today, by_month=True)
    all_months = [add_months(first_read, n) for n in range(months + window - 1)]
    keys = sorted(
        {
            (cur, cat)
            for (cur, _), sums in grouped.items()
            for cat, s in sums.by_category.items()
            if cat != TRANSFER and s.out_count and (category is None or cat == category)
        }
    )
    if category is not None and not keys:
        keys = [(cur, category) for cur in sorted({cur for cur, _ in grouped})]
    series: list[CategoryTrend] = []
    for cur, cat in keys:
        values = [
            grouped[(cur, m)].by_category[cat].out_amount
            if (cur, m) in grouped and cat in grouped[(cur, m)].by_category
            else 0
            for m in all_months
        ]
        points = [
            TrendPoint(
                month=_month_label(all_months[i]),
                spending=Money.of(values[i], cur),
                moving_average=Money.of(_average(values[i - window + 1 : i + 1]), cur),
            )
            for i in range(window - 1, len(all_months))
        ]
        series.append(CategoryTrend(category=cat, currency=cur, points=points))
    return Trends(months=months, window=window, series=series)
