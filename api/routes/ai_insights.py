"""AI routes over the customer's own ledger: spending insight, categorization (one or a
batch), recommendations and behaviour analysis."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, timedelta

from fastapi import APIRouter
from sqlalchemy import or_, select
from sqlmodel import col

from activities.ai.behavior import analyze_behavior
from activities.ai.categorizer import Categorized
from activities.ai.insights import recommendations, spending_insight
from activities.ledger import recategorize_transaction
from api.ai.categorize import categorize_text
from api.ai.errors import InvalidCategorizeRequest, InvalidPeriod
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.money import category as category_of
from api.ownership import owned_account, owned_transaction
from core.db import transaction
from models.ai.schemas import (
    BehaviorAnalysis,
    BehaviorBody,
    CategorizationBatch,
    CategorizationPublic,
    CategorizeBatchBody,
    CategorizeTransactionBody,
    RecommendationList,
    SpendingInsight,
    SpendingInsightBody,
)
from models.audit import record_audit
from models.base import utcnow
from models.ledger.payloads import RecategorizeInput
from models.ledger.tables import Transaction

router = APIRouter(prefix="/api/ai", tags=["ai"])
PERIOD_DAYS = {"week": 7, "month": 30, "quarter": 91, "year": 365}
MAX_SPAN_DAYS = 366


def _range(
    period: str | None, start: date | None, end: date | None, default: str
) -> tuple[date, date]:
    """A bounded, ordered [start, end) range from a named period or explicit dates."""
    today = utcnow().date()
    if period is not None and (start or end):
        raise InvalidPeriod("give either `period` or `start` and `end`, not both")
    if start is None and end is None:
        end = today + timedelta(days=1)
        return end - timedelta(days=PERIOD_DAYS[period or default]), end
    if start is None or end is None:
        raise InvalidPeriod("an open-ended range is not allowed: give both `start` and `end`")
    if start >= end:
        raise InvalidPeriod("`start` must be before `end` (end is exclusive)")
    if (end - start).days > MAX_SPAN_DAYS:
        raise InvalidPeriod(f"a range may span at most {MAX_SPAN_DAYS} days")
    if start > today:
        raise InvalidPeriod("the range starts in the future")
    return start, end


@router.post("/insights/spending")
async def spending(
    body: SpendingInsightBody, user: CurrentUser, services: ServicesDep
) -> SpendingInsight:
    """Spending by category in a period against the one before, with a narrative."""
    start, end = _range(body.period, body.start, body.end, "month")
    category = category_of(body.category) if body.category else None
    async with transaction(services.sessions) as session:
        return await spending_insight(
            session, user.id, start, end, category, services.settings.default_account_currency
        )


def _public(
    found: Categorized, transaction_id: uuid.UUID | None, applied: bool
) -> CategorizationPublic:
    return CategorizationPublic(
        transaction_id=transaction_id,
        category=found.category,
        confidence=found.confidence,
        source=found.source,
        model_version=found.model_version,
        applied=applied,
    )


@router.post("/categorize/transaction")
async def categorize(
    body: CategorizeTransactionBody, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> CategorizationPublic:
    """Categorize one transaction (or a merchant/description): memory, rules, model, LLM."""
    if body.transaction_id is None and not (body.merchant or body.description):
        raise InvalidCategorizeRequest("give `transaction_id`, or `merchant` or `description`")
    if body.transaction_id is None and body.apply:
        raise InvalidCategorizeRequest("`apply` needs a `transaction_id`")
    async with transaction(services.sessions) as session:
        row = (
            await owned_transaction(session, user.id, body.transaction_id)
            if body.transaction_id
            else None
        )
        found = await categorize_text(
            session,
            services.settings,
            user.id,
            merchant=row.merchant if row else body.merchant,
            description=row.description if row else body.description,
            kind=row.kind if row else None,
            direction=row.direction if row else None,
        )
        applied = False
        if row is not None and body.apply and row.category != found.category:
            await recategorize_transaction(
                session,
                RecategorizeInput(
                    transaction_id=row.id, category=found.category, owner_user_id=user.id
                ),
            )
            await record_audit(
                session,
                "transaction.categorized",
                actor_user_id=user.id,
                subject=str(row.id),
                client=client,
                details={"category": found.category, "source": found.source},
            )
            applied = True
    return _public(found, body.transaction_id, applied)


@router.post("/categorize/batch")
async def categorize_batch(
    body: CategorizeBatchBody, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> CategorizationBatch:
    """Categorize the caller's uncategorized history (category empty or 'other'), oldest
    first; `apply` stores each confident result (memory, rules or model)."""
    items: list[CategorizationPublic] = []
    async with transaction(services.sessions) as session:
        rows = (
            (
                await session.execute(
                    select(Transaction)
                    .where(
                        col(Transaction.user_id) == user.id,
                        or_(
                            col(Transaction.category).is_(None),
                            col(Transaction.category) == "other",
                        ),
                        col(Transaction.kind).notin_(["transfer", "sweep"]),
                    )
                    .order_by(col(Transaction.occurred_at), col(Transaction.id))
                    .limit(body.limit)
                )
            )
            .scalars()
            .all()
        )
        for row in rows:
            found = await categorize_text(
                session,
                services.settings,
                user.id,
                merchant=row.merchant,
                description=row.description,
                kind=row.kind,
                direction=row.direction,
                use_llm=False,
            )
            apply = body.apply and found.source != "default" and found.category != row.category
            if apply:
                await recategorize_transaction(
                    session,
                    RecategorizeInput(
                        transaction_id=row.id, category=found.category, owner_user_id=user.id
                    ),
                )
            items.append(_public(found, row.id, apply))
        if body.apply:
            await record_audit(
                session,
                "ai.categorized_batch",
                actor_user_id=user.id,
                client=client,
                details={"applied": sum(i.applied for i in items)},
            )
    return CategorizationBatch(items=items, by_source=dict(Counter(i.source for i in items)))


@router.get("/recommendations")
async def list_recommendations(user: CurrentUser, services: ServicesDep) -> RecommendationList:
    """Subscriptions, budget overruns, idle cash and savings potential, each with evidence."""
    async with services.reads() as session:
        return RecommendationList(items=await recommendations(session, user.id, utcnow().date()))


@router.post("/analyze/behavior")
async def behavior(
    body: BehaviorBody, user: CurrentUser, services: ServicesDep
) -> BehaviorAnalysis:
    """Transactions unusual against the caller's own history (median/MAD), with reasons."""
    start, end = _range(None, body.start, body.end, "month")
    async with services.reads() as session:
        if body.account_id is not None:
            await owned_account(session, user.id, body.account_id)
        return await analyze_behavior(session, user.id, start, end, body.account_id)
