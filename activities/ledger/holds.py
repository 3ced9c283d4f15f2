"""Two-phase holds: place, capture (fully or partly), release, expire."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from activities.categorize import categorize
from activities.ledger.engine import (
    _apply_entry,
    _check_open,
    _check_owner,
    _claim_entry,
    _insufficient,
    _Leg,
    _lock_accounts,
    _system_account_id,
)
from activities.ledger.entries import _kind
from activities.ledger.errors import (
    ACCOUNT_CLOSED,
    CURRENCY_MISMATCH,
    HOLD_ALREADY_RESOLVED,
    HOLD_EXPIRED,
    INVALID_AMOUNT,
    INVALID_REQUEST,
    UNKNOWN_ACCOUNT,
    UNKNOWN_HOLD,
    LedgerError,
)
from activities.ledger.events import _balance_event, _Event, _transaction_event, _write_events
from activities.ledger.sql import _SELECT_HOLD, _UPDATE_HELD, _UPDATE_HOLD_TRANSACTIONS
from activities.ledger.validation import (
    MAX_HOLD_TTL_SECONDS,
    _amount,
    _currency,
    _fingerprint,
    _first_result,
    _key,
    _reused,
    _text,
)
from models.base import utcnow
from models.ledger.payloads import (
    CaptureHoldInput,
    ExpireHoldsInput,
    ExpireHoldsResult,
    PlacedHold,
    PlaceHoldInput,
    ReleaseHoldInput,
    ResolvedHold,
)
from models.ledger.tables import (
    AccountKind,
    AccountStatus,
    Direction,
    HoldStatus,
    TransactionStatus,
)


def _resolved(row: Any) -> ResolvedHold:
    return ResolvedHold(
        hold_id=row.id,
        account_id=row.account_id,
        status=HoldStatus(row.status),
        amount=row.amount,
        currency=row.currency,
        captured_amount=row.captured_amount,
        capture_entry_id=row.capture_entry_id,
        resolved_at=row.resolved_at,
    )


async def place_hold(session: AsyncSession, req: PlaceHoldInput) -> PlacedHold:
    """Reserve funds on a customer account (pending transaction, held += amount)."""
    key = _key(req.idempotency_key)
    currency = _currency(req.currency)
    amount = _amount(req.amount)
    kind = _kind(req.kind)
    description = _text(req.description, "description", 500) or ""
    merchant = _text(req.merchant, "merchant", 200)
    request_hash = _fingerprint("place_hold", req, exclude={"idempotency_key"})
    conn = await session.connection()
    find = text(
        "SELECT h.id, h.account_id, h.counterparty_account_id, h.amount, h.currency, "
        "h.expires_at, h.created_at, h.request_hash, t.id AS transaction_id FROM holds h "
        "LEFT JOIN transactions t ON t.hold_id = h.id WHERE h.idempotency_key = :key"
    )

    async def replay() -> PlacedHold | None:
        return await _first_result(
            conn,
            find,
            key,
            request_hash,
            lambda row: PlacedHold(
                hold_id=row.id,
                account_id=row.account_id,
                counterparty_account_id=row.counterparty_account_id,
                amount=row.amount,
                currency=row.currency,
                expires_at=row.expires_at,
                transaction_id=row.transaction_id,
                created_at=row.created_at,
            ),
        )

    if (first := await replay()) is not None:
        return first
    # Expiry is checked after the replay so a late retry still gets its first result.
    now = utcnow()
    if req.expires_at is not None:
        if req.expires_at.tzinfo is None:
            raise LedgerError(INVALID_REQUEST, "expires_at must be timezone-aware")
        expires_at = req.expires_at
    elif 0 < req.ttl_seconds <= MAX_HOLD_TTL_SECONDS:
        expires_at = now + timedelta(seconds=req.ttl_seconds)
    else:
        raise LedgerError(INVALID_REQUEST, f"ttl_seconds must be 1..{MAX_HOLD_TTL_SECONDS}")
    if expires_at <= now or expires_at > now + timedelta(seconds=MAX_HOLD_TTL_SECONDS):
        raise LedgerError(INVALID_REQUEST, "expires_at must be in the future, within 90 days")
    counterparty_id = req.counterparty_account_id or await _system_account_id(
        conn, AccountKind.EXTERNAL_SETTLEMENT, currency
    )
    if counterparty_id == req.account_id:
        raise LedgerError(INVALID_REQUEST, "a hold cannot pay the account itself")
    other = (
        await conn.execute(
            text("SELECT id, status, currency FROM ledger_accounts WHERE id = :id"),
            {"id": counterparty_id},
        )
    ).first()
    if other is None:
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(counterparty_id))
    acc = (await _lock_accounts(conn, [req.account_id]))[req.account_id]
    _check_owner(acc, req.owner_user_id)
    if acc.kind != AccountKind.CUSTOMER:
        raise LedgerError(INVALID_REQUEST, "holds are placed on customer accounts")
    _check_open(acc, currency)
    if other.status != AccountStatus.OPEN:
        raise LedgerError(ACCOUNT_CLOSED, "the account is closed", account_id=str(other.id))
    if other.currency != currency:
        raise LedgerError(CURRENCY_MISMATCH, "the counterparty account has another currency")
    if acc.posted - acc.held < amount:
        raise _insufficient(acc, amount)
    hold_id = uuid.uuid4()
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO holds (id, account_id, counterparty_account_id, amount, currency, "
                "status, description, merchant, idempotency_key, request_hash, expires_at, "
                "created_at) VALUES (:id, :account_id, :cp, :amount, :currency, 'pending', "
                ":description, :merchant, :key, :hash, :expires_at, :now) "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
            ),
            {
                "id": hold_id,
                "account_id": acc.id,
                "cp": counterparty_id,
                "amount": amount,
                "currency": currency,
                "description": description,
                "merchant": merchant,
                "key": key,
                "hash": request_hash,
                "expires_at": expires_at,
                "now": now,
            },
        )
    ).first()
    if inserted is None:  # a concurrent request with this key committed first
        first = await replay()
        assert first is not None
        return first
    acc.held += amount
    await conn.execute(_UPDATE_HELD, {"ids": [acc.id], "dh": [amount], "now": now})
    transaction_id = uuid.uuid4()
    row = {
        "id": transaction_id,
        "account_id": acc.id,
        "user_id": acc.owner_user_id,
        "journal_entry_id": None,
        "hold_id": hold_id,
        "kind": kind,
        "amount": amount,
        "currency": currency,
        "direction": Direction.DEBIT.value,
        "status": TransactionStatus.PENDING.value,
        "counterparty": merchant,
        "description": description,
        "merchant": merchant,
        "category": categorize(merchant, description, direction="debit"),
        "external_id": None,
        "occurred_at": now,
    }
    await conn.execute(
        text(
            "INSERT INTO transactions (id, account_id, user_id, journal_entry_id, hold_id, kind, "
            "amount, currency, direction, status, counterparty, description, merchant, category, "
            "external_id, occurred_at, created_at, updated_at) VALUES (:id, :account_id, "
            ":user_id, :journal_entry_id, :hold_id, :kind, :amount, :currency, :direction, "
            ":status, :counterparty, :description, :merchant, :category, :external_id, "
            ":occurred_at, :occurred_at, :occurred_at)"
        ),
        row,
    )
    await _write_events(
        conn, [_transaction_event("transaction.created", row), _balance_event(acc, now)], now
    )
    return PlacedHold(
        hold_id=hold_id,
        account_id=acc.id,
        counterparty_account_id=counterparty_id,
        amount=amount,
        currency=currency,
        expires_at=expires_at,
        transaction_id=transaction_id,
        created_at=now,
    )


async def _lock_hold(
    conn: AsyncConnection, hold_id: uuid.UUID, owner_user_id: uuid.UUID | None
) -> Any:
    hold = (await conn.execute(_SELECT_HOLD, {"id": hold_id})).first()
    if hold is None or (owner_user_id is not None and hold.owner_user_id != owner_user_id):
        raise LedgerError(UNKNOWN_HOLD, "unknown hold", hold_id=str(hold_id))
    return hold


def _already_resolved(hold: Any) -> LedgerError:
    return LedgerError(
        HOLD_ALREADY_RESOLVED,
        f"the hold is already {hold.status}",
        hold_id=str(hold.id),
        status=hold.status,
    )


async def _update_hold_transactions(
    conn: AsyncConnection,
    hold_ids: Sequence[uuid.UUID],
    status: TransactionStatus,
    now: datetime,
    *,
    amount: int | None = None,
    entry_id: uuid.UUID | None = None,
) -> list[_Event]:
    result = await conn.execute(
        _UPDATE_HOLD_TRANSACTIONS,
        {
            "status": status.value,
            "now": now,
            "amount": amount,
            "entry_id": entry_id,
            "ids": list(hold_ids),
        },
    )
    rows = result.mappings().all()
    return [_transaction_event("transaction.updated", row) for row in rows]


async def capture_hold(session: AsyncSession, req: CaptureHoldInput) -> ResolvedHold:
    """Capture a pending hold fully or partly: post the captured amount, release the rest.

    A retry with the same amount returns the first result; another amount is
    IdempotencyKeyReused; a hold released or expired is HoldAlreadyResolved.
    """
    conn = await session.connection()
    hold = await _lock_hold(conn, req.hold_id, req.owner_user_id)
    amount = hold.amount if req.amount is None else _amount(req.amount)
    if hold.status == HoldStatus.CAPTURED:
        if hold.captured_amount == amount:
            return _resolved(hold)
        raise _reused(f"hold:{hold.id}:capture")
    if hold.status != HoldStatus.PENDING:
        raise _already_resolved(hold)
    if amount > hold.amount:
        raise LedgerError(
            INVALID_AMOUNT, "cannot capture more than the hold", hold_amount=hold.amount
        )
    now = utcnow()
    if hold.expires_at <= now:
        raise LedgerError(HOLD_EXPIRED, "the hold has expired", hold_id=str(hold.id))
    key = f"hold:{hold.id}:capture"
    entry_id = uuid.uuid4()
    description = hold.description or "Hold capture"
    if not await _claim_entry(
        conn,
        entry_id=entry_id,
        key=key,
        request_hash=hashlib.sha256(f"{hold.id}:{amount}".encode()).hexdigest(),
        kind="hold_capture",
        description=description,
        now=now,
    ):
        raise _already_resolved(hold)  # pragma: no cover - a pending hold has no capture entry
    accounts = await _lock_accounts(conn, [hold.account_id, hold.counterparty_account_id])
    updated = await _update_hold_transactions(
        conn, [hold.id], TransactionStatus.POSTED, now, amount=amount, entry_id=entry_id
    )
    pending_id = updated[0].payload["id"] if updated else None
    await _apply_entry(
        conn,
        entry_id=entry_id,
        kind="hold_capture",
        description=description,
        legs=[
            _Leg(
                hold.account_id,
                -amount,
                hold.currency,
                held_delta=-hold.amount,
                new_transaction=False,
                transaction_id=uuid.UUID(pending_id) if pending_id else None,
            ),
            _Leg(hold.counterparty_account_id, amount, hold.currency),
        ],
        accounts=accounts,
        now=now,
        occurred_at=now,
        extra_events=updated,
    )
    row = (
        await conn.execute(
            text(
                "UPDATE holds SET status = 'captured', captured_amount = :amount, "
                "capture_entry_id = :entry_id, resolved_at = :now WHERE id = :id "
                "RETURNING id, account_id, status, amount, currency, captured_amount, "
                "capture_entry_id, resolved_at"
            ),
            {"amount": amount, "entry_id": entry_id, "now": now, "id": hold.id},
        )
    ).one()
    return _resolved(row)


async def _drop_holds(
    conn: AsyncConnection, holds: Sequence[Any], status: HoldStatus, now: datetime
) -> None:
    """Release or expire locked pending holds: held -= amount, rows and events updated."""
    accounts = await _lock_accounts(conn, {h.account_id for h in holds})
    deltas: dict[uuid.UUID, int] = {}
    for h in holds:
        deltas[h.account_id] = deltas.get(h.account_id, 0) - h.amount
        accounts[h.account_id].held -= h.amount
    await conn.execute(_UPDATE_HELD, {"ids": list(deltas), "dh": list(deltas.values()), "now": now})
    await conn.execute(
        text(
            "UPDATE holds SET status = :status, resolved_at = :now "
            "WHERE id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"status": status.value, "now": now, "ids": [h.id for h in holds]},
    )
    events = await _update_hold_transactions(
        conn, [h.id for h in holds], TransactionStatus(status.value), now
    )
    events += [_balance_event(accounts[a], now) for a in deltas]
    await _write_events(conn, events, now)


async def release_hold(session: AsyncSession, req: ReleaseHoldInput) -> ResolvedHold:
    """Release a pending hold (held -= amount, the pending transaction becomes released)."""
    conn = await session.connection()
    hold = await _lock_hold(conn, req.hold_id, req.owner_user_id)
    if hold.status == HoldStatus.RELEASED:
        return _resolved(hold)
    if hold.status != HoldStatus.PENDING:
        raise _already_resolved(hold)
    now = utcnow()
    await _drop_holds(conn, [hold], HoldStatus.RELEASED, now)
    return ResolvedHold(
        hold_id=hold.id,
        account_id=hold.account_id,
        status=HoldStatus.RELEASED,
        amount=hold.amount,
        currency=hold.currency,
        captured_amount=None,
        capture_entry_id=None,
        resolved_at=now,
    )


async def expire_holds(session: AsyncSession, req: ExpireHoldsInput) -> ExpireHoldsResult:
    """Expire up to `limit` pending holds past their expiry (skipping ones locked right now)."""
    if req.now is not None and req.now.tzinfo is None:
        raise LedgerError(INVALID_REQUEST, "now must be timezone-aware")
    conn = await session.connection()
    now = req.now or utcnow()
    holds = (
        await conn.execute(
            text(
                "SELECT id, account_id, amount FROM holds WHERE status = 'pending' "
                "AND expires_at <= :now ORDER BY id LIMIT :limit FOR NO KEY UPDATE SKIP LOCKED"
            ),
            {"now": now, "limit": req.limit},
        )
    ).all()
    if holds:
        await _drop_holds(conn, holds, HoldStatus.EXPIRED, utcnow())
    return ExpireHoldsResult(expired=[h.id for h in holds])
