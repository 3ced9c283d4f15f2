"""Closing a customer account, sweeping its balance to another of the owner's accounts first."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger.engine import _apply_entry, _check_owner, _claim_entry, _Leg, _lock_accounts
from activities.ledger.errors import (
    ACCOUNT_CLOSED,
    ACCOUNT_NOT_EMPTY,
    CURRENCY_MISMATCH,
    INVALID_REQUEST,
    INVALID_SWEEP_TARGET,
    UNKNOWN_ACCOUNT,
    LedgerError,
)
from activities.ledger.events import _balance_event, _Event, _write_events
from activities.ledger.sql import _ENTRY_POSTINGS, _FIND_ENTRY
from activities.ledger.validation import _reused
from models.base import utcnow
from models.ledger.payloads import (
    CloseAccountInput,
    ClosedAccount,
)
from models.ledger.tables import (
    AccountKind,
    AccountStatus,
)


async def close_account(session: AsyncSession, req: CloseAccountInput) -> ClosedAccount:
    """Close a customer account; a non-zero balance is first swept to `sweep_to_account_id`.

    Closing an already closed account returns how it was closed (a different sweep target than
    the one that received the balance is IdempotencyKeyReused).
    """
    conn = await session.connection()
    ids = [req.account_id] + ([req.sweep_to_account_id] if req.sweep_to_account_id else [])
    accounts = await _lock_accounts(conn, ids)
    acc = accounts[req.account_id]
    _check_owner(acc, req.owner_user_id)
    if acc.kind != AccountKind.CUSTOMER:
        raise LedgerError(INVALID_REQUEST, "only customer accounts can be closed")
    sweep_key = f"account:{acc.id}:close-sweep"
    if acc.status == AccountStatus.CLOSED:
        closed_at = (
            await conn.execute(
                text("SELECT closed_at FROM ledger_accounts WHERE id = :id"), {"id": acc.id}
            )
        ).scalar_one()
        entry = (await conn.execute(_FIND_ENTRY, {"key": sweep_key})).first()
        if entry is None:
            return ClosedAccount(
                account_id=acc.id,
                closed_at=closed_at,
                swept_amount=0,
                sweep_to_account_id=None,
                sweep_entry_id=None,
            )
        legs = (await conn.execute(_ENTRY_POSTINGS, {"entry_id": entry.id})).all()
        credit = next(p for p in legs if p.amount > 0)
        if req.sweep_to_account_id != credit.account_id:
            raise _reused(sweep_key)
        return ClosedAccount(
            account_id=acc.id,
            closed_at=closed_at,
            swept_amount=credit.amount,
            sweep_to_account_id=credit.account_id,
            sweep_entry_id=entry.id,
        )
    if acc.held:
        raise LedgerError(
            ACCOUNT_NOT_EMPTY, "the account has pending holds", held=acc.held, posted=acc.posted
        )
    now = utcnow()
    swept, sweep_entry_id, target_id = 0, None, None
    if acc.posted:
        if req.sweep_to_account_id is None:
            raise LedgerError(
                ACCOUNT_NOT_EMPTY,
                "the account has a balance; give an account to sweep it to",
                posted=acc.posted,
            )
        target = accounts[req.sweep_to_account_id]
        if target.owner_user_id != acc.owner_user_id:  # someone else's: as if it did not exist
            raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(target.id))
        if target.id == acc.id or target.kind != AccountKind.CUSTOMER:
            raise LedgerError(INVALID_SWEEP_TARGET, "the sweep target must be another account")
        if target.status != AccountStatus.OPEN:
            raise LedgerError(ACCOUNT_CLOSED, "the sweep target is closed")
        if target.currency != acc.currency:
            raise LedgerError(CURRENCY_MISMATCH, "the sweep target has another currency")
        swept, sweep_entry_id, target_id = acc.posted, uuid.uuid4(), target.id
        description = f"Balance moved from closed account {acc.name}"
        await _claim_entry(
            conn,
            entry_id=sweep_entry_id,
            key=sweep_key,
            request_hash=hashlib.sha256(f"{acc.id}:{target.id}".encode()).hexdigest(),
            kind="sweep",
            description=description,
            now=now,
        )
        await _apply_entry(
            conn,
            entry_id=sweep_entry_id,
            kind="sweep",
            description=description,
            legs=[
                _Leg(acc.id, -swept, acc.currency, category="transfer"),
                _Leg(target.id, swept, acc.currency, category="transfer"),
            ],
            accounts=accounts,
            now=now,
            occurred_at=now,
        )
    await conn.execute(
        text(
            "UPDATE ledger_accounts SET status = 'closed', closed_at = :now, updated_at = :now "
            "WHERE id = :id"
        ),
        {"now": now, "id": acc.id},
    )
    acc.status = AccountStatus.CLOSED
    result = ClosedAccount(
        account_id=acc.id,
        closed_at=now,
        swept_amount=swept,
        sweep_to_account_id=target_id,
        sweep_entry_id=sweep_entry_id,
    )
    await _write_events(
        conn,
        [
            _Event("account.closed", acc.id, acc.owner_user_id, result.model_dump(mode="json")),
            _balance_event(acc, now),
        ],
        now,
    )
    return result
