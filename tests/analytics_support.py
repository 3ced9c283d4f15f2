"""Helpers of the analytics tests: seeding transactions by SQL (the rollup triggers fire as for
the ledger's own inserts) and the direct SQL the rollup's figures must equal."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import text

from core.db import SessionFactory, transaction

CATEGORIES = ("groceries", "dining", "transport", "salary", "transfer", "shopping", "utilities")

# `n` rows for one account spread over `days` days before `until`, deterministic by row number:
# every 7th a credit, a few pending/memo rows that the rollup must leave out.
_SEED = text(
    """
INSERT INTO transactions (id, account_id, user_id, kind, amount, currency, direction, status,
    description, merchant, category, occurred_at)
SELECT gen_random_uuid(), CAST(:account_id AS uuid), CAST(:user_id AS uuid), 'card',
    100 + (CAST(g AS bigint) * 7919) % 50000, CAST(:currency AS text),
    CASE WHEN g % 7 = 0 THEN 'credit' ELSE 'debit' END,
    CASE WHEN g % 23 = 0 THEN 'pending' WHEN g % 29 = 0 THEN 'memo' ELSE 'posted' END,
    'seeded row ' || g, 'Shop ' || (g % 40),
    (CAST(:categories AS text[]))[1 + g % CAST(:ncat AS int)],
    CAST(:until AS timestamptz)
        - make_interval(secs => (CAST(g AS bigint) * 104729) % (CAST(:days AS bigint) * 86400))
FROM generate_series(1, CAST(:n AS int)) AS g
"""
)


async def seed_transactions(
    sessions: SessionFactory,
    user_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    n: int,
    currency: str,
    until: datetime,
    days: int,
) -> None:
    """Insert `n` transactions for one account (SQL, fast)."""
    async with transaction(sessions) as session:
        await session.execute(
            _SEED,
            {
                "account_id": account_id,
                "user_id": user_id,
                "currency": currency,
                "until": until,
                "days": days,
                "n": n,
                "categories": list(CATEGORIES),
                "ncat": len(CATEGORIES),
            },
        )


_DIRECT = text(
    """
SELECT currency, category,
       coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0) AS money_in,
       coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0) AS money_out,
       count(*) AS n
FROM transactions
WHERE user_id = :user_id AND status = 'posted'
  AND occurred_at >= CAST(:first AS date) AND occurred_at < CAST(:last AS date) + 1
GROUP BY currency, category
"""
)


async def direct_sums(
    sessions: SessionFactory, user_id: uuid.UUID, first: date, last: date
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(currency, category) -> (in, out, count) straight from `transactions` (UTC days)."""
    async with sessions() as session:
        await session.execute(text("SET LOCAL TIME ZONE 'UTC'"))
        rows = await session.execute(_DIRECT, {"user_id": user_id, "first": first, "last": last})
        return {
            (r.currency, r.category): (int(r.money_in), int(r.money_out), int(r.n)) for r in rows
        }


_REBUILT = text(
    """
SELECT account_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, coalesce(category, 'other'),
       coalesce(sum(amount) FILTER (WHERE direction = 'credit'), 0),
       count(*) FILTER (WHERE direction = 'credit'),
       coalesce(sum(amount) FILTER (WHERE direction = 'debit'), 0),
       count(*) FILTER (WHERE direction = 'debit')
FROM transactions WHERE status = 'posted' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
)
_ROLLUP = text(
    "SELECT account_id, day, category, in_amount, in_count, out_amount, out_count "
    "FROM analytics_daily ORDER BY 1, 2, 3"
)


async def rollup_and_rebuilt(sessions: SessionFactory) -> tuple[list[Any], list[Any]]:
    """The rollup as kept by the triggers, and as rebuilt from scratch now."""
    async with sessions() as session:
        kept = [tuple(r) for r in await session.execute(_ROLLUP)]
        rebuilt = [tuple(r) for r in await session.execute(_REBUILT)]
    return kept, rebuilt
