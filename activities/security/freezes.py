"""Freezes of outbound payments: set by the customer or by a fraud report, checked where money
leaves an account (payment creation, hold placement of an external payment, a transfer's post).

The check sits in the activities that move money, so a payment already running (e.g. an
external payment waiting for approval) cannot proceed once its account is frozen, without any
change to the workflows' commands (no `workflow.patched`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.ledger import LedgerError
from activities.security.errors import ACCOUNT_FROZEN
from models.base import utcnow
from models.security.tables import AccountFreeze, FreezeKind


async def freeze_account(
    session: AsyncSession,
    user_id: uuid.UUID,
    account_id: uuid.UUID,
    kind: FreezeKind,
    incident_id: uuid.UUID | None = None,
) -> bool:
    """Freeze outbound payments (idempotent: one active freeze per account and kind); returns
    whether a new freeze was set."""
    inserted = await session.execute(
        insert(AccountFreeze)
        .values(
            id=uuid.uuid4(),
            account_id=account_id,
            user_id=user_id,
            kind=kind,
            incident_id=incident_id,
        )
        .on_conflict_do_nothing(
            index_elements=["account_id", "kind"], index_where=text("lifted_at IS NULL")
        )
        .returning(col(AccountFreeze.id))
    )
    return inserted.first() is not None


async def lift_freeze(
    session: AsyncSession, account_id: uuid.UUID, kind: FreezeKind, by: uuid.UUID
) -> bool:
    """Lift the active freeze of this kind; returns whether one was lifted."""
    lifted = await session.execute(
        update(AccountFreeze)
        .where(
            col(AccountFreeze.account_id) == account_id,
            col(AccountFreeze.kind) == kind,
            col(AccountFreeze.lifted_at).is_(None),
        )
        .values(lifted_at=utcnow(), lifted_by=by)
        .returning(col(AccountFreeze.id))
    )
    return lifted.first() is not None


async def active_freezes(session: AsyncSession, account_id: uuid.UUID) -> list[FreezeKind]:
    """The kinds of the account's active freezes (empty: not frozen)."""
    rows = await session.execute(
        select(col(AccountFreeze.kind)).where(
            col(AccountFreeze.account_id) == account_id, col(AccountFreeze.lifted_at).is_(None)
        )
    )
    return sorted(FreezeKind(k) for k in rows.scalars())


async def ensure_not_frozen(session: AsyncSession, account_id: uuid.UUID) -> None:
    """Raise the non-retryable `AccountFrozen` rejection while the account is frozen."""
    if kinds := await active_freezes(session, account_id):
        raise LedgerError(
            ACCOUNT_FROZEN,
            "outbound payments from this account are frozen",
            account_id=str(account_id),
            kinds=[k.value for k in kinds],
        )


async def hold_placed(session: AsyncSession, idempotency_key: str) -> bool:
    """Whether a hold with this key exists already (its retry must get the first result)."""
    found = await session.execute(
        text("SELECT 1 FROM holds WHERE idempotency_key = :key"), {"key": idempotency_key}
    )
    return found.first() is not None
