"""The posting engine: lock accounts in id order, claim the idempotency key, apply legs, keep
balances and the transactions read model in step. See `activities.ledger` for the rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from activities.categorize import categorize
from activities.ledger.errors import (
    ACCOUNT_CLOSED,
    CURRENCY_MISMATCH,
    INSUFFICIENT_FUNDS,
    INVALID_AMOUNT,
    INVALID_REQUEST,
    UNKNOWN_ACCOUNT,
    LedgerError,
)
from activities.ledger.events import _balance_event, _Event, _event_params, _transaction_event
from activities.ledger.sql import (
    _APPLY_ENTRY,
    _CLAIM_AND_LOCK,
    _CLAIM_ENTRY,
    _ENTRY_POSTINGS,
    _FIND_ENTRY,
    _LOCK_ACCOUNTS,
)
from activities.ledger.validation import MAX_BALANCE, _reused
from core.metrics import LEDGER_ENTRIES, LEDGER_POSTINGS, count_after_commit
from models.base import utcnow
from models.ledger.payloads import (
    EntryResult,
    PostingResult,
    SystemAccounts,
)
from models.ledger.tables import (
    SYSTEM_KINDS,
    AccountKind,
    AccountStatus,
    Direction,
    TransactionStatus,
)


@dataclass(slots=True)
class _Account:
    id: uuid.UUID
    kind: str
    owner_user_id: uuid.UUID | None
    name: str
    number: str | None
    currency: str
    status: str
    posted: int
    held: int


@dataclass(slots=True)
class _Leg:
    account_id: uuid.UUID
    amount: int
    currency: str
    held_delta: int = 0
    counterparty: str | None = None
    description: str | None = None
    merchant: str | None = None
    category: str | None = None
    external_id: str | None = None
    new_transaction: bool = True
    transaction_id: uuid.UUID | None = None


async def _lock_accounts(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, _Account]:
    """Lock the accounts in ascending id order; UnknownAccount if any is missing."""
    wanted = sorted(set(ids))
    rows = (await conn.execute(_LOCK_ACCOUNTS, {"ids": wanted})).all()
    found = {row.id: _Account(*row) for row in rows}
    if len(found) != len(wanted):
        missing = next(i for i in wanted if i not in found)
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(missing))
    return found


def _check_owner(acc: _Account, owner_user_id: uuid.UUID | None) -> None:
    # Another user's account is reported exactly like a missing one (no existence leak).
    if owner_user_id is not None and acc.owner_user_id != owner_user_id:
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(acc.id))


def _check_open(acc: _Account, currency: str) -> None:
    if acc.status != AccountStatus.OPEN:
        raise LedgerError(ACCOUNT_CLOSED, "the account is closed", account_id=str(acc.id))
    if acc.currency != currency:
        raise LedgerError(
            CURRENCY_MISMATCH,
            f"the account holds {acc.currency}, not {currency}",
            account_id=str(acc.id),
            account_currency=acc.currency,
            currency=currency,
        )


def _insufficient(acc: _Account, requested: int) -> LedgerError:
    return LedgerError(
        INSUFFICIENT_FUNDS,
        "insufficient available funds",
        account_id=str(acc.id),
        available=acc.posted - acc.held,
        requested=requested,
        currency=acc.currency,
    )


def _default_counterparty(me: _Account, other: _Account) -> str | None:
    if other.kind != AccountKind.CUSTOMER or other.number is None:
        return None
    if other.owner_user_id == me.owner_user_id:
        return other.name
    return f"Account ****{other.number[-4:]}"  # another customer: never their name


async def _claim_entry(
    conn: AsyncConnection,
    *,
    entry_id: uuid.UUID,
    key: str,
    request_hash: str,
    kind: str,
    description: str,
    now: datetime,
) -> bool:
    """Insert the entry header; False if the key exists (after any concurrent holder commits)."""
    row = (
        await conn.execute(
            _CLAIM_ENTRY,
            {
                "id": entry_id,
                "key": key,
                "hash": request_hash,
                "kind": kind,
                "description": description,
                "now": now,
            },
        )
    ).first()
    return row is not None


async def _replay_entry(conn: AsyncConnection, key: str, request_hash: str) -> EntryResult:
    """The first result of an entry whose key was already used, or IdempotencyKeyReused."""
    entry = (await conn.execute(_FIND_ENTRY, {"key": key})).one()
    if entry.request_hash != request_hash:
        raise _reused(key)
    rows = (await conn.execute(_ENTRY_POSTINGS, {"entry_id": entry.id})).all()
    return EntryResult(
        entry_id=entry.id,
        idempotency_key=key,
        kind=entry.kind,
        description=entry.description,
        created_at=entry.created_at,
        postings=[
            PostingResult(
                account_id=r.account_id,
                amount=r.amount,
                currency=r.currency,
                balance_after=r.balance_after,
                transaction_id=r.transaction_id,
            )
            for r in rows
        ],
    )


@dataclass(slots=True)
class _Plan:
    """One entry's writes, computed against the locked accounts (which it has updated)."""

    entry_id: uuid.UUID
    kind: str
    occurred_at: datetime
    acc_ids: list[uuid.UUID]
    acc_dp: list[int]
    acc_dh: list[int]
    p_acc: list[uuid.UUID]
    p_amt: list[int]
    p_cur: list[str]
    p_bal: list[int]
    t_cols: dict[str, list[Any]]
    events: list[_Event]
    results: list[PostingResult]


_T_COLS = (
    *("t_id", "t_acc", "t_user", "t_amount", "t_cur", "t_dir", "t_cp", "t_desc"),
    *("t_merchant", "t_cat", "t_ext"),
)


def _plan_entry(
    *,
    entry_id: uuid.UUID,
    kind: str,
    description: str,
    legs: Sequence[_Leg],
    accounts: dict[uuid.UUID, _Account],
    now: datetime,
    occurred_at: datetime,
    extra_events: Sequence[_Event] = (),
) -> _Plan:
    """Validate the legs against the locked accounts and compute the entry's rows and events.

    Updates the in-memory balances as it goes; on a LedgerError the caller either rolls back
    the transaction (single path) or restores the balances it saved (batch path).
    """
    plan = _Plan(
        entry_id=entry_id,
        kind=kind,
        occurred_at=occurred_at,
        acc_ids=[],
        acc_dp=[],
        acc_dh=[],
        p_acc=[],
        p_amt=[],
        p_cur=[],
        p_bal=[],
        t_cols={c: [] for c in _T_COLS},
        events=[],
        results=[],
    )
    t_cols = plan.t_cols
    events: list[_Event] = []
    touched: list[_Account] = []
    pair = len(legs) == 2
    for leg in legs:  # a closed or mismatched account is reported before any lack of funds
        _check_open(accounts[leg.account_id], leg.currency)
    for i, leg in enumerate(legs):
        acc = accounts[leg.account_id]
        new_posted = acc.posted + leg.amount
        new_held = acc.held + leg.held_delta
        if (
            acc.kind == AccountKind.CUSTOMER
            and leg.amount - leg.held_delta < 0
            and new_posted - new_held < 0
        ):
            raise _insufficient(acc, -(leg.amount - leg.held_delta))
        if abs(new_posted) > MAX_BALANCE:
            raise LedgerError(INVALID_AMOUNT, "the balance would overflow", account_id=str(acc.id))
        acc.posted, acc.held = new_posted, new_held
        plan.acc_ids.append(acc.id)
        plan.acc_dp.append(leg.amount)
        plan.acc_dh.append(leg.held_delta)
        transaction_id = leg.transaction_id
        if leg.amount != 0:
            plan.p_acc.append(acc.id)
            plan.p_amt.append(leg.amount)
            plan.p_cur.append(leg.currency)
            plan.p_bal.append(new_posted)
        if acc.kind == AccountKind.CUSTOMER:
            if leg.new_transaction and leg.amount != 0:
                transaction_id = uuid.uuid4()
                direction = Direction.CREDIT if leg.amount > 0 else Direction.DEBIT
                counterparty = leg.counterparty
                if counterparty is None and pair:
                    counterparty = _default_counterparty(acc, accounts[legs[1 - i].account_id])
                desc = leg.description if leg.description is not None else description
                category = leg.category or categorize(
                    leg.merchant, desc, kind=kind, direction=direction
                )
                row = {
                    "id": transaction_id,
                    "account_id": acc.id,
                    "user_id": acc.owner_user_id,
                    "journal_entry_id": entry_id,
                    "hold_id": None,
                    "kind": kind,
                    "amount": abs(leg.amount),
                    "currency": leg.currency,
                    "direction": direction.value,
                    "status": TransactionStatus.POSTED.value,
                    "counterparty": counterparty,
                    "description": desc,
                    "merchant": leg.merchant,
                    "category": category,
                    "external_id": leg.external_id,
                    "occurred_at": occurred_at,
                }
                for col, value in zip(
                    t_cols,
                    (
                        *(transaction_id, acc.id, acc.owner_user_id, abs(leg.amount)),
                        *(leg.currency, direction.value, counterparty, desc, leg.merchant),
                        *(category, leg.external_id),
                    ),
                    strict=True,
                ):
                    t_cols[col].append(value)
                events.append(_transaction_event("transaction.created", row))
            touched.append(acc)
        plan.results.append(
            PostingResult(
                account_id=acc.id,
                amount=leg.amount,
                currency=leg.currency,
                balance_after=new_posted,
                transaction_id=transaction_id,
            )
        )
    # Balance events carry the final balances (an account appears at most once per entry).
    plan.events = [*events, *extra_events, *(_balance_event(a, now) for a in touched)]
    return plan


async def _apply_entry(
    conn: AsyncConnection,
    *,
    entry_id: uuid.UUID,
    kind: str,
    description: str,
    legs: Sequence[_Leg],
    accounts: dict[uuid.UUID, _Account],
    now: datetime,
    occurred_at: datetime,
    extra_events: Sequence[_Event] = (),
) -> list[PostingResult]:
    """Validate the legs against the locked accounts and write everything in one statement."""
    plan = _plan_entry(
        entry_id=entry_id,
        kind=kind,
        description=description,
        legs=legs,
        accounts=accounts,
        now=now,
        occurred_at=occurred_at,
        extra_events=extra_events,
    )
    await conn.execute(
        _APPLY_ENTRY,
        {
            "now": now,
            "entry_id": entry_id,
            "kind": kind,
            "occurred_at": occurred_at,
            "acc_ids": plan.acc_ids,
            "acc_dp": plan.acc_dp,
            "acc_dh": plan.acc_dh,
            "p_acc": plan.p_acc,
            "p_amt": plan.p_amt,
            "p_cur": plan.p_cur,
            "p_bal": plan.p_bal,
            **plan.t_cols,
            **_event_params(plan.events),
        },
    )
    return [r for r in plan.results if r.amount != 0]


async def _post(
    conn: AsyncConnection,
    *,
    key: str,
    request_hash: str,
    kind: str,
    description: str,
    legs: Sequence[_Leg],
    occurred_at: datetime | None,
    owner_user_id: uuid.UUID | None = None,
    owner_checked: Iterable[uuid.UUID] = (),
    customer_only: Iterable[uuid.UUID] = (),
) -> tuple[EntryResult, bool]:
    """Claim the key, lock the accounts, apply the entry; or replay the first result.

    Returns the result and whether it is a replay.
    """
    now = utcnow()
    entry_id = uuid.uuid4()
    wanted = sorted({leg.account_id for leg in legs})
    rows = (
        await conn.execute(
            _CLAIM_AND_LOCK,
            {
                "id": entry_id,
                "key": key,
                "hash": request_hash,
                "kind": kind,
                "description": description,
                "now": now,
                "ids": wanted,
            },
        )
    ).all()
    if not rows:
        first = (await conn.execute(_FIND_ENTRY, {"key": key})).one()
        if first.id != entry_id:  # the key was used before: replay its first result
            return await _replay_entry(conn, key, request_hash), True
    accounts = {row.id: _Account(*row) for row in rows}
    if len(accounts) != len(wanted):
        missing = next(i for i in wanted if i not in accounts)
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(missing))
    for account_id in owner_checked:
        _check_owner(accounts[account_id], owner_user_id)
    for account_id in customer_only:
        if accounts[account_id].kind != AccountKind.CUSTOMER:
            raise LedgerError(
                INVALID_REQUEST,
                "this operation needs a customer account",
                account_id=str(account_id),
            )
    postings = await _apply_entry(
        conn,
        entry_id=entry_id,
        kind=kind,
        description=description,
        legs=legs,
        accounts=accounts,
        now=now,
        occurred_at=occurred_at or now,
    )
    result = EntryResult(
        entry_id=entry_id,
        idempotency_key=key,
        kind=kind,
        description=description,
        created_at=now,
        postings=postings,
    )
    _count_entry(conn, kind, postings)
    return result, False


def _count_entry(conn: AsyncConnection, kind: str, postings: Sequence[PostingResult]) -> None:
    """Business metrics of a new entry, counted once its transaction commits."""
    count_after_commit(conn, LEDGER_ENTRIES.labels(kind))
    for currency in {p.currency for p in postings}:
        lines = sum(1 for p in postings if p.currency == currency)
        count_after_commit(conn, LEDGER_POSTINGS.labels(currency), lines)


async def _system_account_id(conn: AsyncConnection, kind: AccountKind, currency: str) -> uuid.UUID:
    row = (
        await conn.execute(
            text("SELECT id FROM ledger_accounts WHERE kind = :kind AND currency = :currency"),
            {"kind": kind.value, "currency": currency},
        )
    ).first()
    if row is not None:
        account_id: uuid.UUID = row.id
        return account_id
    accounts = await _ensure_system_accounts(conn, currency)
    found: uuid.UUID = getattr(accounts, kind.value)
    return found


async def _ensure_system_accounts(conn: AsyncConnection, currency: str) -> SystemAccounts:
    select_sql = text(
        "SELECT kind, id FROM ledger_accounts WHERE kind <> 'customer' AND currency = :currency"
    )
    ids: dict[str, uuid.UUID] = dict(
        (await conn.execute(select_sql, {"currency": currency})).tuples().all()
    )
    if any(kind.value not in ids for kind in SYSTEM_KINDS):
        names = {
            AccountKind.EXTERNAL_SETTLEMENT: "External settlement",
            AccountKind.FEES: "Fees",
            AccountKind.SUSPENSE: "Suspense",
        }
        await conn.execute(
            text(
                "INSERT INTO ledger_accounts (id, kind, name, currency, status, posted, held) "
                "VALUES (:id, :kind, :name, :currency, 'open', 0, 0) "
                "ON CONFLICT (kind, currency) WHERE kind <> 'customer' DO NOTHING"
            ),
            [
                {
                    "id": uuid.uuid4(),
                    "kind": kind.value,
                    "name": f"{names[kind]} {currency}",
                    "currency": currency,
                }
                for kind in SYSTEM_KINDS
                if kind.value not in ids
            ],
        )
        ids = dict((await conn.execute(select_sql, {"currency": currency})).tuples().all())
    return SystemAccounts(
        currency=currency,
        external_settlement=ids[AccountKind.EXTERNAL_SETTLEMENT.value],
        fees=ids[AccountKind.FEES.value],
        suspense=ids[AccountKind.SUSPENSE.value],
    )
