"""A month's report figures, computed in SQL from the `analytics_daily` rollup.

Stored as JSON in minor units (ints) per currency: flows, savings rate, categories, the
previous month's spending, and the spending of each day (for the chart).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.analytics.figures import TRANSFER
from activities.analytics.periods import add_months, month_span

# One pass over the user's rollup rows of the month and the month before.
_ROWS = text(
    """
SELECT currency, day, category, sum(in_amount) AS in_amount, sum(in_count) AS in_count,
       sum(out_amount) AS out_amount, sum(out_count) AS out_count
FROM analytics_daily
WHERE user_id = :user_id AND day BETWEEN :first AND :last
GROUP BY currency, day, category
"""
)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


async def month_figures(session: AsyncSession, user_id: uuid.UUID, first: date) -> dict[str, Any]:
    """The figures of the month starting at `first` (JSON-ready)."""
    span = month_span(first)
    previous = add_months(first, -1)
    rows = await session.execute(_ROWS, {"user_id": user_id, "first": previous, "last": span.last})
    cur_data: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "money_in": 0,
            "money_out": 0,
            "income": 0,
            "spending": 0,
            "transactions": 0,
            "previous_spending": 0,
            "categories": defaultdict(lambda: [0, 0, 0]),
            "daily": defaultdict(int),
        }
    )
    for currency, day, category, in_amount, in_count, out_amount, out_count in rows:
        c = cur_data[currency]
        counted = category != TRANSFER
        if day < first:
            c["previous_spending"] += int(out_amount) if counted else 0
            continue
        c["money_in"] += int(in_amount)
        c["money_out"] += int(out_amount)
        c["transactions"] += int(in_count) + int(out_count)
        if counted:
            c["income"] += int(in_amount)
            c["spending"] += int(out_amount)
            c["daily"][day.day] += int(out_amount)
        cat = c["categories"][category]
        cat[0] += int(out_amount)
        cat[1] += int(in_amount)
        cat[2] += int(in_count) + int(out_count)
    currencies = []
    for currency in sorted(cur_data):
        c = cur_data[currency]
        if not c["transactions"] and not c["previous_spending"]:
            continue
        categories = sorted(c["categories"].items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        currencies.append(
            {
                "currency": currency,
                "money_in": c["money_in"],
                "money_out": c["money_out"],
                "income": c["income"],
                "spending": c["spending"],
                "transactions": c["transactions"],
                "savings_rate": _ratio(c["income"] - c["spending"], c["income"]),
                "previous_spending": c["previous_spending"],
                "change_ratio": _ratio(
                    c["spending"] - c["previous_spending"], c["previous_spending"]
                ),
                "categories": [
                    {"category": name, "spending": v[0], "income": v[1], "count": v[2]}
                    for name, v in categories
                ],
                "daily_spending": [c["daily"].get(d, 0) for d in range(1, span.days + 1)],
            }
        )
    return {"month": f"{first:%Y-%m}", "days": span.days, "currencies": currencies}
