"""Behaviour analysis: a customer's debits in a window judged against their own year before
it by robust statistics (median and MAD), each unusual one with its reasons."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from activities.ai.insights import at
from activities.ai.patterns import debits, median, merchant_key, robust_z
from models.ai.schemas import Anomaly, BehaviorAnalysis
from models.money import Money, format_amount

Z_LIMIT = 3.5


async def analyze_behavior(
    session: AsyncSession,
    user_id: uuid.UUID,
    start: date,
    end: date,
    account_id: uuid.UUID | None,
) -> BehaviorAnalysis:
    """Debits in [start, end) unusual against the year before: amount (robust z over the
    category's median/MAD), a new merchant at a large amount, or an unusual hour."""
    history = await debits(session, user_id, at(start - timedelta(days=365)), at(start))
    window = await debits(session, user_id, at(start), at(end))
    if account_id is not None:
        history = [t for t in history if t.account_id == account_id]
        window = [t for t in window if t.account_id == account_id]
    amounts: dict[str, list[float]] = defaultdict(list)
    for t in history:
        amounts[f"{t.category or 'other'}:{t.currency}"].append(float(t.amount))
    all_amounts = [float(t.amount) for t in history]
    merchants = {merchant_key(t.merchant, t.description) for t in history}
    hours = Counter(t.occurred_at.astimezone(UTC).hour for t in history)
    found: list[Anomaly] = []
    for t in window:
        reasons: list[str] = []
        score = 0.0
        base = amounts.get(f"{t.category or 'other'}:{t.currency}", [])
        if len(base) >= 5:
            z = robust_z(float(t.amount), base)
            if z > Z_LIMIT:
                reasons.append(
                    f"amount {format_amount(t.amount, t.currency)} {t.currency} is {z:.1f} robust "
                    f"deviations above your median {t.category or 'other'} payment of "
                    f"{format_amount(int(median(base)), t.currency)} {t.currency}"
                )
                score = max(score, z)
        key = merchant_key(t.merchant, t.description)
        if (
            len(history) >= 10
            and key not in merchants
            and all_amounts
            and t.amount > median(all_amounts) * 3
        ):
            reasons.append(
                f"first payment to {t.merchant or t.description!r}, at over three times your "
                f"median payment ({format_amount(int(median(all_amounts)), t.currency)} "
                f"{t.currency})"
            )
            score = max(score, 3.0)
        hour = t.occurred_at.astimezone(UTC).hour
        if len(history) >= 20 and hours[hour] / len(history) < 0.02:
            reasons.append(
                f"at {hour:02d}:00 UTC, an hour when you made {hours[hour]} of your "
                f"{len(history)} payments in the year before"
            )
            score = max(score, 2.0)
        if reasons:
            found.append(
                Anomaly(
                    transaction_id=t.id,
                    occurred_at=t.occurred_at,
                    amount=Money.of(t.amount, t.currency),
                    merchant=t.merchant,
                    category=t.category,
                    reasons=reasons,
                    score=round(score, 2),
                )
            )
    found.sort(key=lambda a: -a.score)
    return BehaviorAnalysis(
        start=start,
        end=end,
        baseline_transactions=len(history),
        examined=len(window),
        anomalies=found,
    )
