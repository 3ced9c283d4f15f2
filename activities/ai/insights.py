"""Spending insights, recommendations and behaviour analysis over a customer's own ledger.

All figures are computed in SQL or from the customer's rows here; narratives are templates
over those figures (so they state nothing the data does not).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.ai.patterns import debits, detect_series, median
from activities.events.streams import USER_EVENTS
from models.ai.schemas import (
    CategoryShare,
    Recommendation,
    SpendingInsight,
)
from models.ai.tables import Insight
from models.ledger.tables import (
    AccountKind,
    AccountStatus,
    AccountType,
    Direction,
    LedgerAccount,
    OutboxEvent,
    Transaction,
    TransactionStatus,
)
from models.money import Money, format_amount

INSIGHT_READY = "ai.insight.ready"
DISCRETIONARY = ("dining", "entertainment", "shopping", "travel")
OVERRUN_FACTOR = 1.3


def at(day: date) -> datetime:
    """Midnight UTC of a day."""
    return datetime.combine(day, time.min, tzinfo=UTC)


async def _by_category(
    session: AsyncSession, user_id: uuid.UUID, start: date, end: date, category: str | None
) -> list[tuple[str, str, int, int, list[str]]]:
    where = [
        col(Transaction.user_id) == user_id,
        col(Transaction.direction) == Direction.DEBIT,
        col(Transaction.status).in_([TransactionStatus.POSTED, TransactionStatus.MEMO]),
        col(Transaction.kind).notin_(["transfer", "sweep"]),
        col(Transaction.occurred_at) >= at(start),
        col(Transaction.occurred_at) < at(end),
    ]
    if category:
        where.append(col(Transaction.category) == category)
    cat = func.coalesce(col(Transaction.category), "other")
    rows = await session.execute(
        select(
            cat,
            col(Transaction.currency),
            func.sum(col(Transaction.amount)),
            func.count(),
            func.array_agg(cast(col(Transaction.id), String)),
        )
        .where(*where)
        .group_by(cat, col(Transaction.currency))
    )
    return [(c, cur, int(s), int(n), list(ids)) for c, cur, s, n, ids in rows.all()]


async def _top_merchants(
    session: AsyncSession, user_id: uuid.UUID, start: date, end: date, currency: str
) -> list[dict[str, Any]]:
    name = func.coalesce(col(Transaction.merchant), col(Transaction.description))
    rows = await session.execute(
        select(name, func.sum(col(Transaction.amount)), func.count())
        .where(
            col(Transaction.user_id) == user_id,
            col(Transaction.direction) == Direction.DEBIT,
            col(Transaction.status) == TransactionStatus.POSTED,
            col(Transaction.kind).notin_(["transfer", "sweep"]),
            col(Transaction.currency) == currency,
            col(Transaction.occurred_at) >= at(start),
            col(Transaction.occurred_at) < at(end),
        )
        .group_by(name)
        .order_by(func.sum(col(Transaction.amount)).desc())
        .limit(5)
    )
    return [
        {"merchant": m, "amount": Money.of(int(s), currency).model_dump(), "count": int(n)}
        for m, s, n in rows.all()
    ]


def _change(now: int, before: int) -> float | None:
    return round((now - before) * 100 / before, 1) if before else None


async def spending_insight(
    session: AsyncSession,
    user_id: uuid.UUID,
    start: date,
    end: date,
    category: str | None,
    default_currency: str,
) -> SpendingInsight:
    """Spending in [start, end) against the period of the same length before it; stored as an
    insight and announced with `ai.insight.ready` in the same transaction."""
    span = end - start
    now_rows = await _by_category(session, user_id, start, end, category)
    before_rows = await _by_category(session, user_id, start - span, start, category)
    currencies = Counter({cur: s for _, cur, s, _, _ in now_rows})
    currency = currencies.most_common(1)[0][0] if currencies else default_currency
    before = {c: s for c, cur, s, _, _ in before_rows if cur == currency}
    shares = sorted(
        (
            CategoryShare(
                category=c,
                amount=Money.of(s, currency),
                previous=Money.of(before.get(c, 0), currency),
                change_percent=_change(s, before.get(c, 0)),
                count=n,
                transaction_ids=[uuid.UUID(i) for i in sorted(ids)[:10]],
            )
            for c, cur, s, n, ids in now_rows
            if cur == currency
        ),
        key=lambda share: -share.amount.amount_minor,
    )
    total = sum(s.amount.amount_minor for s in shares)
    previous_total = sum(before.values())
    insight = SpendingInsight(
        insight_id=uuid.uuid4(),
        start=start,
        end=end,
        currency=currency,
        total=Money.of(total, currency),
        previous_total=Money.of(previous_total, currency),
        categories=shares,
        top_merchants=await _top_merchants(session, user_id, start, end, currency),
        narrative=_narrative(shares, total, previous_total, currency, start, end),
        source="local",
    )
    await _announce(
        session, user_id, insight.insight_id, "spending", insight.model_dump(mode="json")
    )
    return insight


def _narrative(
    shares: list[CategoryShare], total: int, previous: int, currency: str, start: date, end: date
) -> str:
    last_day = (end - timedelta(days=1)).isoformat()
    if not shares:
        return f"No spending from {start.isoformat()} to {last_day}."
    text = (
        f"From {start.isoformat()} to {last_day} you spent {format_amount(total, currency)} "
        f"{currency}"
    )
    if previous:
        change = _change(total, previous)
        more = "more" if total > previous else "less"
        text += (
            f", {abs(change or 0)}% {more} than the period before "
            f"({format_amount(previous, currency)} {currency})"
        )
    top = shares[0]
    text += (
        f". Most went to {top.category}: {top.amount.amount} {currency} "
        f"in {top.count} transactions."
    )
    return text


async def _announce(
    session: AsyncSession,
    user_id: uuid.UUID,
    insight_id: uuid.UUID,
    kind: str,
    payload: dict[str, Any],
) -> None:
    session.add(Insight(id=insight_id, user_id=user_id, kind=kind, payload=payload))
    session.add(
        OutboxEvent(
            topic=USER_EVENTS,
            type=INSIGHT_READY,
            aggregate_id=insight_id,
            user_id=user_id,
            payload={"insight_id": str(insight_id), "user_id": str(user_id), "kind": kind},
        )
    )
    await session.flush()


async def _accounts(session: AsyncSession, user_id: uuid.UUID) -> list[LedgerAccount]:
    return list(
        (
            await session.execute(
                select(LedgerAccount).where(
                    col(LedgerAccount.owner_user_id) == user_id,
                    col(LedgerAccount.kind) == AccountKind.CUSTOMER,
                    col(LedgerAccount.status) == AccountStatus.OPEN,
                )
            )
        ).scalars()
    )


def _month(d: datetime) -> str:
    return d.strftime("%Y-%m")


async def recommendations(
    session: AsyncSession, user_id: uuid.UUID, today: date
) -> list[Recommendation]:
    """Subscriptions, budget overruns, idle cash and savings potential, with evidence."""
    rows = await debits(session, user_id, at(today - timedelta(days=400)))
    out: list[Recommendation] = []
    for s in detect_series(rows):
        if (today - s.last_date).days > s.interval_days * 2:
            continue  # it stopped
        per_month = int(s.typical_amount * 30 / s.interval_days)
        out.append(
            Recommendation(
                kind="subscription",
                title=f"Recurring payment to {s.merchant}",
                detail=(
                    f"About {format_amount(s.typical_amount, s.currency)} {s.currency} every "
                    f"{s.interval_days} days, roughly {format_amount(per_month, s.currency)} "
                    f"{s.currency} a month. Cancel it if you no longer use it."
                ),
                amount=Money.of(per_month, s.currency),
                evidence={
                    "transaction_ids": [str(i) for i in s.transaction_ids[-12:]],
                    "interval_days": s.interval_days,
                    "occurrences": len(s.transaction_ids),
                },
            )
        )
    monthly: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for t in rows:
        monthly[(t.category or "other", t.currency)][_month(t.occurred_at)] += t.amount
    this_month = today.strftime("%Y-%m")
    for (category, currency), months in sorted(monthly.items()):
        past = [v for m, v in sorted(months.items()) if m < this_month][-6:]
        current = months.get(this_month, 0)
        if len(past) >= 3 and current > median([float(v) for v in past]) * OVERRUN_FACTOR:
            typical = int(median([float(v) for v in past]))
            out.append(
                Recommendation(
                    kind="budget_overrun",
                    title=f"{category.capitalize()} above your usual month",
                    detail=(
                        f"{format_amount(current, currency)} {currency} so far this month against "
                        f"a typical {format_amount(typical, currency)} {currency}."
                    ),
                    amount=Money.of(current - typical, currency),
                    evidence={
                        "this_month": current,
                        "typical_month": typical,
                        "months": dict(months),
                    },
                )
            )
    out += _cash(await _accounts(session, user_id), monthly, this_month)
    return out


def _cash(
    accounts: list[LedgerAccount], monthly: dict[tuple[str, str], dict[str, int]], this_month: str
) -> list[Recommendation]:
    out: list[Recommendation] = []
    for a in accounts:
        if a.type != AccountType.CHECKING:
            continue
        spend_by_month: dict[str, int] = defaultdict(int)
        for (_, cur), months in monthly.items():
            if cur == a.currency:
                for m, v in months.items():
                    if m < this_month:
                        spend_by_month[m] += v
        typical = int(median([float(v) for v in spend_by_month.values()])) if spend_by_month else 0
        idle = a.posted - a.held - 2 * typical
        if typical and idle > typical:
            out.append(
                Recommendation(
                    kind="idle_cash",
                    title=f"Idle cash in {a.name}",
                    detail=(
                        f"{format_amount(a.posted - a.held, a.currency)} {a.currency} available, "
                        f"over two months of your typical spending "
                        f"({format_amount(typical, a.currency)} {a.currency}); "
                        f"{format_amount(idle, a.currency)} {a.currency} could go to savings."
                    ),
                    amount=Money.of(idle, a.currency),
                    evidence={"account_id": str(a.id), "typical_month": typical},
                )
            )
    for (category, currency), months in sorted(monthly.items()):
        past = [v for m, v in sorted(months.items()) if m < this_month][-3:]
        if category in DISCRETIONARY and len(past) == 3:
            avg = sum(past) // 3
            saving = avg // 5
            if saving > 0:
                out.append(
                    Recommendation(
                        kind="savings_potential",
                        title=f"Save on {category}",
                        detail=(
                            f"You spend about {format_amount(avg, currency)} {currency} a month "
                            f"on {category}; a fifth less saves "
                            f"{format_amount(saving, currency)} {currency} a month."
                        ),
                        amount=Money.of(saving, currency),
                        evidence={"last_three_months": past},
                    )
                )
    return out
