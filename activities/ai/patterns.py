"""Patterns in a customer's own history: recurring series (subscriptions, bills) and robust
statistics (median and MAD) that the recommendations and the behaviour analysis share."""

from __future__ import annotations

import itertools
import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models.ledger.tables import Direction, Transaction, TransactionStatus

LOOKBACK_DAYS = 400
MIN_OCCURRENCES = 3
MAD_SCALE = 1.4826  # MAD of a normal distribution -> its standard deviation


@dataclass(frozen=True)
class Series:
    """Debits to one merchant at a regular interval."""

    merchant: str
    currency: str
    interval_days: int
    typical_amount: int
    transaction_ids: list[uuid.UUID]
    last_date: date


def median(values: list[float]) -> float:
    """The median (0 for no values)."""
    return float(statistics.median(values)) if values else 0.0


def mad(values: list[float]) -> float:
    """The median absolute deviation from the median."""
    if not values:
        return 0.0
    m = median(values)
    return median([abs(v - m) for v in values])


def robust_z(value: float, values: list[float]) -> float:
    """How many robust standard deviations `value` is from the median of `values`."""
    m, d = median(values), mad(values) * MAD_SCALE
    if d == 0:
        d = max(abs(m) * 0.1, 1.0)  # all equal: 10% of the median counts as one deviation
    return (value - m) / d


def merchant_key(merchant: str | None, description: str | None) -> str:
    """A normalized merchant name (the description when there is no merchant)."""
    text = (merchant or description or "").strip().lower()
    return " ".join(text.split())[:200]


async def debits(
    session: AsyncSession, user_id: uuid.UUID, since: datetime, until: datetime | None = None
) -> list[Transaction]:
    """The customer's posted debits (spending, not own transfers) since a moment, oldest first."""
    query = select(Transaction).where(
        col(Transaction.user_id) == user_id,
        col(Transaction.direction) == Direction.DEBIT,
        col(Transaction.status).in_([TransactionStatus.POSTED, TransactionStatus.MEMO]),
        col(Transaction.kind).notin_(["transfer", "sweep"]),
        col(Transaction.occurred_at) >= since,
    )
    if until is not None:
        query = query.where(col(Transaction.occurred_at) < until)
    return list(
        (await session.execute(query.order_by(col(Transaction.occurred_at), col(Transaction.id))))
        .scalars()
        .all()
    )


def detect_series(rows: list[Transaction]) -> list[Series]:
    """Merchants paid at least 3 times at a steady interval (weekly to yearly) and amount."""
    by_merchant: dict[tuple[str, str], list[Transaction]] = defaultdict(list)
    for t in rows:
        key = merchant_key(t.merchant, t.description)
        if key:
            by_merchant[(key, t.currency)].append(t)
    found: list[Series] = []
    for (key, currency), items in sorted(by_merchant.items()):
        if len(items) < MIN_OCCURRENCES:
            continue
        gaps = [
            (b.occurred_at - a.occurred_at).total_seconds() / 86400
            for a, b in itertools.pairwise(items)
        ]
        interval = median(gaps)
        amounts = [float(t.amount) for t in items]
        if not 6 <= interval <= 370:
            continue
        if mad(gaps) > max(3.0, interval * 0.15) or mad(amounts) > median(amounts) * 0.1:
            continue
        found.append(
            Series(
                merchant=items[-1].merchant or key,
                currency=currency,
                interval_days=round(interval),
                typical_amount=int(median(amounts)),
                transaction_ids=[t.id for t in items],
                last_date=items[-1].occurred_at.date(),
            )
        )
    return found


async def recurring_series(session: AsyncSession, user_id: uuid.UUID, today: date) -> list[Series]:
    """Recurring series in the customer's last ~13 months."""
    since = datetime.combine(today - timedelta(days=LOOKBACK_DAYS), time.min, tzinfo=UTC)
    return detect_series(await debits(session, user_id, since))
