"""Transactions: list (keyset pages, filters in `api.transactions.filters`), read, full-text
search, analytics and recategorize. Every query is scoped to the caller's `user_id`; another
user's transaction or account is a 404. Manual entries are in `api.routes.manual_entries`; card
and cash transactions that move money come only from the processor feed (`api.routes.processor`).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import ColumnElement, Float, bindparam, cast, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlmodel import col

from activities.ai.categorizer import remember_correction
from activities.ledger import recategorize_transaction
from api import read_views
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.fast_reads import ReadQuery, as_text
from api.money import category as category_of
from api.ownership import owned_account, owned_transaction
from api.pagination import CursorParam, InvalidCursor, decode_cursor, encode_cursor, position
from api.transactions.filters import (
    AccountFilter,
    Bound,
    FromBound,
    InvalidFilter,
    ListParams,
    ListParamsDep,
    _conditions,
    _in_range,
    _range,
)
from core.db import transaction
from models.audit import record_audit
from models.ledger.payloads import RecategorizeInput, TransactionRecord
from models.ledger.tables import (
    SEARCH_CONFIG,
    Direction,
    Transaction,
    TransactionStatus,
    transaction_search_column,
)
from models.money import Money
from models.text import SINGLE_LINE
from models.transactions.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_QUERY_LENGTH,
    CategorizeBody,
    CategoryTotal,
    CurrencyTotal,
    MonthTotal,
    TransactionAnalytics,
    TransactionPage,
    TransactionPublic,
)

router = APIRouter(prefix="/api/transactions", tags=["transactions"])


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"page size, max {MAX_PAGE_SIZE}")]


def _query_digest(q: str) -> str:
    return hashlib.sha256(q.encode()).hexdigest()[:16]


NO_FILTERS = ListParams(None, None, None, None, None, None, None, None, None)
FIRST_PAGE = ReadQuery(
    select(  # the columns of `read_views.transaction`, ids as text
        as_text(col(Transaction.id)),
        as_text(col(Transaction.account_id)),
        col(Transaction.amount),
        col(Transaction.currency),
        col(Transaction.direction),
        col(Transaction.status),
        col(Transaction.kind),
        col(Transaction.counterparty),
        col(Transaction.description),
        col(Transaction.merchant),
        col(Transaction.category),
        col(Transaction.external_id),
        col(Transaction.occurred_at),
        col(Transaction.created_at),
    )
    .where(col(Transaction.user_id) == bindparam("user_id"))
    .order_by(col(Transaction.occurred_at).desc(), col(Transaction.id).desc())
    .limit(bindparam("limit"))
)


@router.get("", response_model=TransactionPage)
async def list_transactions(
    user: CurrentUser,
    services: ServicesDep,
    params: ListParamsDep,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> TransactionPage | Response:
    """The caller's transactions, newest first (occurred_at, id), one keyset page at a time."""
    if cursor is None and params == NO_FILTERS:  # the dashboard's first page: the hot query
        records = await FIRST_PAGE.fetch(services.read_pool, user_id=user.id, limit=limit + 1)
        return read_views.json_response(read_views.transaction_page(records, limit))
    async with services.reads() as session:
        conditions = await _conditions(session, user.id, params)
        if cursor:
            at, tid = position(*decode_cursor(cursor, "l", 2))
            conditions.append(
                tuple_(col(Transaction.occurred_at), col(Transaction.id)) < tuple_(at, tid)
            )
        query = (
            select(Transaction)
            .where(*conditions)
            .order_by(col(Transaction.occurred_at).desc(), col(Transaction.id).desc())
            .limit(limit + 1)
        )
        rows = list((await session.execute(query)).scalars())
    return _page(rows, limit)


def _page(rows: list[Transaction], limit: int) -> TransactionPage:
    """A page of up to `limit` rows out of `limit + 1` read, with the cursor when more follow."""
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = encode_cursor("l", last.occurred_at.isoformat(), str(last.id))
    return TransactionPage(items=[TransactionPublic.of(r) for r in page], next_cursor=next_cursor)


@router.get("/search")
async def search_transactions(
    user: CurrentUser,
    services: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_LENGTH), SINGLE_LINE],
    account_id: AccountFilter = None,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> TransactionPage:
    """Full-text search over description and merchant (PostgreSQL websearch syntax), ranked."""
    terms = q.strip()
    if not terms:
        raise InvalidFilter("`q` must not be blank", parameter="q")
    tsquery = func.websearch_to_tsquery(cast(literal(SEARCH_CONFIG), REGCONFIG), terms)
    vector = transaction_search_column()
    rank = cast(func.ts_rank(vector, tsquery), Float)
    conditions: list[ColumnElement[bool]] = [
        col(Transaction.user_id) == user.id,
        vector.op("@@")(tsquery),
    ]
    async with services.reads() as session:
        if account_id is not None:
            await owned_account(session, user.id, account_id)
            conditions.append(col(Transaction.account_id) == account_id)
        if cursor:
            digest, last_rank, occurred_at, transaction_id = decode_cursor(cursor, "s", 4)
            if digest != _query_digest(terms) or not isinstance(last_rank, float | int):
                raise InvalidCursor("the cursor belongs to another search")
            at, tid = position(occurred_at, transaction_id)
            conditions.append(
                tuple_(rank, col(Transaction.occurred_at), col(Transaction.id))
                < tuple_(float(last_rank), at, tid)
            )
        query = (
            select(Transaction, rank.label("rank"))
            .where(*conditions)
            .order_by(rank.desc(), col(Transaction.occurred_at).desc(), col(Transaction.id).desc())
            .limit(limit + 1)
        )
        rows = (await session.execute(query)).all()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last, last_rank_value = page[-1]
        next_cursor = encode_cursor(
            "s",
            _query_digest(terms),
            float(last_rank_value),
            last.occurred_at.isoformat(),
            str(last.id),
        )
    return TransactionPage(
        items=[TransactionPublic.of(r[0]) for r in page], next_cursor=next_cursor
    )


@router.get("/analytics")
async def transaction_analytics(
    user: CurrentUser,
    services: ServicesDep,
    from_: FromBound = None,
    to: Bound = None,
    account_id: AccountFilter = None,
) -> TransactionAnalytics:
    """Posted money in/out per category, per UTC month and in total, grouped by currency."""
    window = _range(from_, to)
    conditions: list[ColumnElement[bool]] = [
        col(Transaction.user_id) == user.id,
        # Only money that moved: pending holds may still be released, released ones never moved.
        col(Transaction.status) == TransactionStatus.POSTED,
        *_in_range(window),
    ]
    is_credit = col(Transaction.direction) == Direction.CREDIT
    money_in = func.coalesce(func.sum(col(Transaction.amount)).filter(is_credit), 0)
    money_out = func.coalesce(func.sum(col(Transaction.amount)).filter(~is_credit), 0)
    count = func.count()
    category = func.coalesce(col(Transaction.category), "uncategorized")
    month = func.to_char(
        func.date_trunc("month", func.timezone("UTC", col(Transaction.occurred_at))), "YYYY-MM"
    )
    currency = col(Transaction.currency)
    async with services.reads() as session:
        if account_id is not None:
            await owned_account(session, user.id, account_id)
            conditions.append(col(Transaction.account_id) == account_id)
        by_category = (
            await session.execute(
                select(category, currency, money_in, money_out, count)
                .where(*conditions)
                .group_by(category, currency)
                .order_by(currency, category)
            )
        ).all()
        by_month = (
            await session.execute(
                select(month, currency, money_in, money_out, count)
                .where(*conditions)
                .group_by(month, currency)
                .order_by(month, currency)
            )
        ).all()
        totals = (
            await session.execute(
                select(currency, money_in, money_out, count)
                .where(*conditions)
                .group_by(currency)
                .order_by(currency)
            )
        ).all()

    def money(minor: Any, code: str) -> Money:
        return Money.of(int(minor), code)

    return TransactionAnalytics(
        start=window.start,
        end=window.end,
        account_id=account_id,
        totals=[
            CurrencyTotal(
                currency=cur,
                money_in=money(i, cur),
                money_out=money(o, cur),
                net=money(int(i) - int(o), cur),
                count=n,
            )
            for cur, i, o, n in totals
        ],
        by_category=[
            CategoryTotal(
                category=cat, currency=cur, money_in=money(i, cur), money_out=money(o, cur), count=n
            )
            for cat, cur, i, o, n in by_category
        ],
        by_month=[
            MonthTotal(
                month=m,
                currency=cur,
                money_in=money(i, cur),
                money_out=money(o, cur),
                net=money(int(i) - int(o), cur),
                count=n,
            )
            for m, cur, i, o, n in by_month
        ],
    )


@router.get("/{transaction_id}")
async def get_transaction(
    transaction_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> TransactionPublic:
    """One of the caller's transactions."""
    async with services.reads() as session:
        return TransactionPublic.of(await owned_transaction(session, user.id, transaction_id))


@router.post("/{transaction_id}/categorize")
async def categorize_transaction(
    transaction_id: uuid.UUID,
    body: CategorizeBody,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
) -> TransactionPublic:
    """Set the category of one of the caller's transactions (one of the ledger's categories)."""
    category = category_of(body.category)
    async with transaction(services.sessions) as session:
        row = await owned_transaction(session, user.id, transaction_id)
        # The customer's correction teaches the AI categorizer (per-user merchant memory).
        await remember_correction(session, user.id, row.merchant, row.description, category)
        view: TransactionRecord = await recategorize_transaction(
            session,
            RecategorizeInput(
                transaction_id=transaction_id, category=category, owner_user_id=user.id
            ),
        )
        await record_audit(
            session,
            "transaction.categorized",
            actor_user_id=user.id,
            subject=str(transaction_id),
            client=client,
            details={"category": category},
        )
    return TransactionPublic.of(view)
