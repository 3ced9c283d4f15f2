"""Transactions: list (keyset pages, filters), read, full-text search, analytics, recategorize,
and the customer's manual entries (memos that move no money). Card and cash transactions that
move money come only from the signed processor feed (`api.routes.processor`).

Every query is scoped to the caller's `user_id`; another user's transaction or account is a 404.

Filter semantics (documented in the README):
- `from`/`to` take a date (`2024-05-01`) or a datetime (`2024-05-01T12:00:00Z`; naive = UTC).
  Both bounds are inclusive: a date `to` covers that whole (UTC) day.
- `min_amount`/`max_amount` are decimal strings compared (inclusive) with the transaction's
  positive amount in minor units. They are interpreted in `currency` or, without it, in the
  currency of `account_id`; with neither they are refused, since 10 JPY and 10 KWD are not
  comparable. Giving `currency` also restricts the results to that currency.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import ColumnElement, Float, cast, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.categorize import CATEGORIES
from activities.ledger import LedgerError, recategorize_transaction
from activities.memos import Memo, add_memo, delete_memo, same_request
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.ledger_errors import LedgerProblem, as_problem
from api.payments.idempotency import IdempotencyKeyReused, key_digest
from api.routes.accounts import IdempotencyKey, owned_account
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.ledger.payloads import RecategorizeInput, TransactionRecord
from models.ledger.tables import (
    SEARCH_CONFIG,
    AccountStatus,
    Direction,
    Transaction,
    TransactionStatus,
    transaction_search_column,
)
from models.money import AmountError, CurrencyError, Money, normalize_currency_code, parse_amount
from models.transactions.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_QUERY_LENGTH,
    CategorizeBody,
    CategoryTotal,
    CurrencyTotal,
    ManualEntryCreate,
    MonthTotal,
    TransactionAnalytics,
    TransactionPage,
    TransactionPublic,
)

router = APIRouter(prefix="/api/transactions", tags=["transactions"])

# External sources may run slightly ahead of our clock; anything later is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(minutes=5)

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"page size, max {MAX_PAGE_SIZE}")]
Cursor = Annotated[str | None, Query(max_length=300, description="`next_cursor` of a page")]
Bound = Annotated[str | None, Query(max_length=40)]
AmountParam = Annotated[str | None, Query(max_length=40)]
AccountFilter = Annotated[uuid.UUID | None, Query()]


class InvalidFilter(errors.AppError):
    """A query parameter that cannot be interpreted."""

    status, type, title = 422, "invalid-filter", "Invalid filter"


class InvalidCursor(errors.AppError):
    """A cursor that this API did not issue (or issued for another query)."""

    status, type, title = 422, "invalid-cursor", "Invalid cursor"


# --- parameter parsing -----------------------------------------------------------------------

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A "+02:00" offset whose "+" arrived as a space because the client did not URL-encode it.
_SPACED_OFFSET_RE = re.compile(r" (\d{2}:?\d{2})$")


def _bound(value: str | None, name: str, *, end: bool) -> datetime | None:
    """A date or datetime bound as an instant; a date `to` means the end of that day.

    Returns the inclusive start for `from` and the exclusive end for `to`.
    """
    if value is None or not value.strip():
        return None
    text_value = value.strip()
    try:
        if _DATE_RE.match(text_value):
            day = date.fromisoformat(text_value)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(_SPACED_OFFSET_RE.sub(r"+\1", text_value))
    except ValueError as exc:
        raise InvalidFilter(
            f"`{name}` must be a date (2024-05-01) or an ISO 8601 datetime", parameter=name
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed + timedelta(microseconds=1) if end else parsed


@dataclass(frozen=True)
class Range:
    """A half-open time range [start, end); either side may be open."""

    start: datetime | None
    end: datetime | None


def _range(from_: str | None, to: str | None) -> Range:
    start, end = _bound(from_, "from", end=False), _bound(to, "to", end=True)
    if start is not None and end is not None and start >= end:
        raise InvalidFilter("`from` must not be after `to`")
    return Range(start, end)


def _currency(code: str) -> str:
    try:
        return normalize_currency_code(code)
    except CurrencyError as exc:
        raise LedgerProblem(422, "unknown-currency", str(exc), currency=code[:8]) from exc


def _amount(value: str, currency: str, name: str) -> int:
    try:
        return parse_amount(value, currency)
    except AmountError as exc:
        raise LedgerProblem(422, "invalid-amount", f"`{name}`: {exc}", parameter=name) from exc


def parse_entry_money(
    amount: str, currency_code: str, category: str | None
) -> tuple[int, str, str | None]:
    """An entry's amount in minor units, its currency and category (422 problems if invalid)."""
    currency = _currency(currency_code)
    return (
        _amount(amount, currency, "amount"),
        currency,
        _category(category) if category is not None else None,
    )


def _category(value: str) -> str:
    category = value.strip().lower()
    if category not in CATEGORIES:
        raise LedgerProblem(
            422, "invalid-category", f"unknown category {value[:40]!r}", allowed=sorted(CATEGORIES)
        )
    return category


# --- cursors ---------------------------------------------------------------------------------


def _encode_cursor(payload: list[Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str, arity: int) -> list[Any]:
    """The cursor's fields after `kind`; InvalidCursor for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this API issued") from exc
    if not (isinstance(payload, list) and len(payload) == arity + 1 and payload[0] == kind):
        raise InvalidCursor("the cursor is not one this API issued (or belongs to another query)")
    return payload[1:]


def _position(occurred_at: object, transaction_id: object) -> tuple[datetime, uuid.UUID]:
    try:
        at = datetime.fromisoformat(str(occurred_at))
        tid = uuid.UUID(str(transaction_id))
    except ValueError as exc:
        raise InvalidCursor("the cursor is not one this API issued") from exc
    if at.tzinfo is None:
        raise InvalidCursor("the cursor is not one this API issued")
    return at, tid


def _query_digest(q: str) -> str:
    return hashlib.sha256(q.encode()).hexdigest()[:16]


# --- shared filters --------------------------------------------------------------------------


@dataclass
class ListParams:
    """The list/search filters as received (validated against the database in `_conditions`)."""

    account_id: uuid.UUID | None
    from_: str | None
    to: str | None
    min_amount: str | None
    max_amount: str | None
    currency: str | None
    direction: Direction | None
    category: str | None
    status: TransactionStatus | None


def list_params(
    account_id: AccountFilter = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Bound = None,
    min_amount: AmountParam = None,
    max_amount: AmountParam = None,
    currency: Annotated[str | None, Query(max_length=3)] = None,
    direction: Annotated[Direction | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[TransactionStatus | None, Query()] = None,
) -> ListParams:
    """Collect the list filters from the query string."""
    return ListParams(
        account_id, from_, to, min_amount, max_amount, currency, direction, category, status
    )


ListParamsDep = Annotated[ListParams, Depends(list_params)]


def _in_range(window: Range) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if window.start is not None:
        conditions.append(col(Transaction.occurred_at) >= window.start)
    if window.end is not None:
        conditions.append(col(Transaction.occurred_at) < window.end)
    return conditions


async def _conditions(
    session: AsyncSession, user_id: uuid.UUID, params: ListParams
) -> list[ColumnElement[bool]]:
    """WHERE conditions for the caller's transactions matching the filters (404 for a foreign
    account filter, 422 for filters that cannot be interpreted)."""
    conditions: list[ColumnElement[bool]] = [col(Transaction.user_id) == user_id]
    account_currency: str | None = None
    if params.account_id is not None:
        account = await owned_account(session, user_id, params.account_id)
        account_currency = account.currency
        conditions.append(col(Transaction.account_id) == account.id)
    currency = _currency(params.currency) if params.currency else None
    if currency is not None:
        if account_currency is not None and account_currency != currency:
            raise LedgerProblem(
                422,
                "currency-mismatch",
                f"the account holds {account_currency}, not {currency}",
                account_currency=account_currency,
                currency=currency,
            )
        conditions.append(col(Transaction.currency) == currency)
    conditions += _in_range(_range(params.from_, params.to))
    if params.min_amount is not None or params.max_amount is not None:
        amount_currency = currency or account_currency
        if amount_currency is None:
            raise InvalidFilter(
                "min_amount/max_amount need `currency` or `account_id` to be interpreted"
            )
        low = (
            _amount(params.min_amount, amount_currency, "min_amount") if params.min_amount else None
        )
        high = (
            _amount(params.max_amount, amount_currency, "max_amount") if params.max_amount else None
        )
        if low is not None and high is not None and low > high:
            raise InvalidFilter("`min_amount` must not be greater than `max_amount`")
        if low is not None:
            conditions.append(col(Transaction.amount) >= low)
        if high is not None:
            conditions.append(col(Transaction.amount) <= high)
    if params.direction is not None:
        conditions.append(col(Transaction.direction) == params.direction)
    if params.category is not None:
        conditions.append(col(Transaction.category) == _category(params.category))
    if params.status is not None:
        conditions.append(col(Transaction.status) == params.status)
    return conditions


async def _owned_transaction(
    session: AsyncSession, user_id: uuid.UUID, transaction_id: uuid.UUID
) -> Transaction:
    row = await session.get(Transaction, transaction_id)
    if row is None or row.user_id != user_id:
        raise errors.NotFound("unknown transaction")
    return row


# --- routes ----------------------------------------------------------------------------------


@router.get("")
async def list_transactions(
    user: CurrentUser,
    services: ServicesDep,
    params: ListParamsDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> TransactionPage:
    """The caller's transactions, newest first (occurred_at, id), one keyset page at a time."""
    async with services.sessions() as session:
        conditions = await _conditions(session, user.id, params)
        if cursor:
            at, tid = _position(*_decode_cursor(cursor, "l", 2))
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
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = _encode_cursor(["l", last.occurred_at.isoformat(), str(last.id)])
    return TransactionPage(items=[TransactionPublic.of(r) for r in page], next_cursor=next_cursor)


@router.get("/search")
async def search_transactions(
    user: CurrentUser,
    services: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_LENGTH)],
    account_id: AccountFilter = None,
    cursor: Cursor = None,
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
    async with services.sessions() as session:
        if account_id is not None:
            await owned_account(session, user.id, account_id)
            conditions.append(col(Transaction.account_id) == account_id)
        if cursor:
            digest, last_rank, occurred_at, transaction_id = _decode_cursor(cursor, "s", 4)
            if digest != _query_digest(terms) or not isinstance(last_rank, float | int):
                raise InvalidCursor("the cursor belongs to another search")
            at, tid = _position(occurred_at, transaction_id)
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
        next_cursor = _encode_cursor(
            [
                "s",
                _query_digest(terms),
                float(last_rank_value),
                last.occurred_at.isoformat(),
                str(last.id),
            ]
        )
    return TransactionPage(
        items=[TransactionPublic.of(r[0]) for r in page], next_cursor=next_cursor
    )


@router.get("/analytics")
async def transaction_analytics(
    user: CurrentUser,
    services: ServicesDep,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
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
    async with services.sessions() as session:
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
    async with services.sessions() as session:
        return TransactionPublic.of(await _owned_transaction(session, user.id, transaction_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "replay: this Idempotency-Key already added this entry"}},
)
async def add_manual_entry(
    body: ManualEntryCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> TransactionPublic:
    """Add a note of money spent or received outside the bank (status `memo`); it moves no
    money: balances, holds and analytics totals stay as they are. Card and cash transactions
    that moved money arrive only through the signed processor feed."""
    digest = key_digest(idempotency_key)
    amount, currency, category = parse_entry_money(body.amount, body.currency, body.category)
    memo = Memo(
        account_id=body.account_id,
        user_id=user.id,
        amount=amount,
        currency=currency,
        direction=body.direction,
        description=body.description,
        merchant=body.merchant,
        counterparty=body.counterparty,
        category=category,
        occurred_at=body.occurred_at,
    )
    if body.occurred_at is not None and body.occurred_at > utcnow() + MAX_CLOCK_SKEW:
        raise LedgerProblem(422, "invalid-request", "occurred_at is in the future")
    async with transaction(services.sessions) as session:
        account = await owned_account(session, user.id, body.account_id)
        if account.currency != currency:
            raise LedgerProblem(
                422,
                "currency-mismatch",
                f"the account holds {account.currency}, not {currency}",
                account_currency=account.currency,
                currency=currency,
            )
        if account.status != AccountStatus.OPEN:
            raise LedgerProblem(409, "account-closed", "the account is closed")
        row, created = await add_memo(session, memo, digest)
        if not created and not same_request(row, memo):
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different entry")
        if created:
            await record_audit(
                session,
                "transaction.memo_added",
                actor_user_id=user.id,
                subject=f"transaction:{row.id}",
                client=client,
            )
    if created:
        response.headers["Location"] = f"{router.prefix}/{row.id}"
    else:
        response.status_code = status.HTTP_200_OK
    return TransactionPublic.of(row)


@router.delete("/{transaction_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_manual_entry(
    transaction_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> Response:
    """Delete one of the caller's manual entries; a transaction that moved money is 409."""
    async with transaction(services.sessions) as session:
        row = await _owned_transaction(session, user.id, transaction_id)
        if row.status != TransactionStatus.MEMO:
            raise errors.InvalidState("only manual entries (status memo) can be deleted")
        await delete_memo(session, row)
        await record_audit(
            session,
            "transaction.memo_deleted",
            actor_user_id=user.id,
            subject=f"transaction:{transaction_id}",
            client=client,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{transaction_id}/categorize")
async def categorize_transaction(
    transaction_id: uuid.UUID,
    body: CategorizeBody,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
) -> TransactionPublic:
    """Set the category of one of the caller's transactions (one of the ledger's categories)."""
    category = _category(body.category)
    async with transaction(services.sessions) as session:
        try:
            view: TransactionRecord = await recategorize_transaction(
                session,
                RecategorizeInput(
                    transaction_id=transaction_id, category=category, owner_user_id=user.id
                ),
            )
        except LedgerError as exc:
            raise as_problem(exc) from exc
        await record_audit(
            session,
            "transaction.categorized",
            actor_user_id=user.id,
            subject=str(transaction_id),
            client=client,
            details={"category": category},
        )
    return TransactionPublic.of(view)
