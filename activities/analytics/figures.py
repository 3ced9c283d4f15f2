"""Figures from the `analytics_daily` rollup: grouped sums, and the shapes the API answers.

Every figure is a sum of posted transactions in UTC days. `income` and `spending` leave out the
`transfer` category (moving money between accounts is neither); `money_in`/`money_out` do not.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models.analytics.schemas import CategoryAmount, Flows
from models.money import Money

TRANSFER = "transfer"


@dataclass
class Sums:
    """Sums and counts of posted credits (in) and debits (out)."""

    in_amount: int = 0
    in_count: int = 0
    out_amount: int = 0
    out_count: int = 0

    def add(self, other: Sums) -> None:
        """Add another group's sums to this one."""
        self.in_amount += other.in_amount
        self.in_count += other.in_count
        self.out_amount += other.out_amount
        self.out_count += other.out_count


@dataclass
class CurrencySums:
    """One currency's sums per category (and the totals for income and spending)."""

    by_category: dict[str, Sums] = field(default_factory=dict)

    def total(self) -> Sums:
        """All categories together."""
        out = Sums()
        for sums in self.by_category.values():
            out.add(sums)
        return out

    def spending(self) -> int:
        """Debits outside transfers."""
        return sum(s.out_amount for c, s in self.by_category.items() if c != TRANSFER)

    def income(self) -> int:
        """Credits outside transfers."""
        return sum(s.in_amount for c, s in self.by_category.items() if c != TRANSFER)


# Keyed (currency, month) -> per category. `month` groups by calendar month when asked,
# else the whole range is one group under its first day.
_GROUPED = text(
    """
SELECT currency,
       CASE WHEN CAST(:by_month AS boolean) THEN CAST(date_trunc('month', day) AS date)
            ELSE CAST(:first AS date) END AS month,
       category,
       sum(in_amount) AS in_amount, sum(in_count) AS in_count,
       sum(out_amount) AS out_amount, sum(out_count) AS out_count
FROM analytics_daily
WHERE user_id = :user_id AND day BETWEEN :first AND :last
  AND (CAST(:currency AS text) IS NULL OR currency = CAST(:currency AS text))
GROUP BY 1, 2, 3
"""
)


async def grouped_sums(
    session: AsyncSession,
    user_id: uuid.UUID,
    first: date,
    last: date,
    *,
    by_month: bool = False,
    currency: str | None = None,
) -> dict[tuple[str, date], CurrencySums]:
    """The user's rollup between two days, per currency (and month) and category."""
    rows = await session.execute(
        _GROUPED,
        {
            "user_id": user_id,
            "first": first,
            "last": last,
            "by_month": by_month,
            "currency": currency,
        },
    )
    out: dict[tuple[str, date], CurrencySums] = defaultdict(CurrencySums)
    for cur, month, category, in_amount, in_count, out_amount, out_count in rows:
        out[(cur, month)].by_category[category] = Sums(
            int(in_amount), int(in_count), int(out_amount), int(out_count)
        )
    return out


def flows_of(sums: CurrencySums, currency: str) -> Flows:
    """The API's flows of one currency's sums."""
    total = sums.total()
    return Flows(
        money_in=Money.of(total.in_amount, currency),
        money_out=Money.of(total.out_amount, currency),
        income=Money.of(sums.income(), currency),
        spending=Money.of(sums.spending(), currency),
        transactions=total.in_count + total.out_count,
    )


def categories_of(
    sums: CurrencySums, currency: str, limit: int | None = None
) -> list[CategoryAmount]:
    """Categories by spending (then income) descending, then name; `limit` keeps the first."""
    spending = sums.spending()
    ranked = sorted(
        sums.by_category.items(), key=lambda kv: (-kv[1].out_amount, -kv[1].in_amount, kv[0])
    )
    items = [
        CategoryAmount(
            category=category,
            spending=Money.of(s.out_amount, currency),
            income=Money.of(s.in_amount, currency),
            count=s.in_count + s.out_count,
            share_of_spending=(
                round(s.out_amount / spending, 4) if spending and category != TRANSFER else None
            ),
        )
        for category, s in ranked
    ]
    return items[:limit] if limit is not None else items


def savings_rate(sums: CurrencySums) -> float | None:
    """(income - spending) / income, rounded to 4 places; None without income."""
    income = sums.income()
    return round((income - sums.spending()) / income, 4) if income else None
