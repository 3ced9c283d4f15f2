"""Freezes of outbound payments: set by the customer or by a fraud report, checked where money
leaves an account (payment creation, hold placement of an external payment, a transfer's post).

The check sits in the activities that move money, so a payment already running (e.g. an
external payment waiting for approval) cannot proceed once its account is frozen, without any
change to the workflows' commands (no `workflow.patched`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
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


def active_freeze_kinds(
    account_id: uuid.UUID | ColumnElement[Any] | Mapped[uuid.UUID],
) -> ScalarSelect[Any]:
    """The kinds of the account's active freezes as one array column (NULL: not frozen), to
    ride along in a statement the caller makes anyway (an id, or a column to correlate with)."""
    return (
        select(func.array_agg(col(AccountFreeze.kind)))
        .where(col(AccountFreeze.account_id) == account_id, col(AccountFreeze.lifted_at).is_(None))
        .scalar_subquery()
    )


def refuse_if_frozen(account_id: uuid.UUID, kinds: Iterable[str] | None) -> None:
    """Raise the non-retryable `AccountFrozen` rejection when `kinds` (the account's active
    freezes) is not empty."""
    if active := sorted(FreezeKind(k) for k in kinds or ()):
        raise LedgerError(
            ACCOUNT_FROZEN,
            "outbound payments from this account are frozen",
            account_id=str(account_id),
            kinds=[k.value for k in active],
        )


async def ensure_not_frozen(session: AsyncSession, account_id: uuid.UUID) -> None:
    """Raise the non-retryable `AccountFrozen` rejection while the account is frozen."""
    refuse_if_frozen(account_id, await active_freezes(session, account_id))


async def hold_placed(session: AsyncSession, idempotency_key: str) -> bool:
    """Whether a hold with this key exists already (its retry must get the first result)."""
    found = await session.execute(
        text("SELECT 1 FROM holds WHERE idempotency_key = :key"), {"key": idempotency_key}
    )
    return found.first() is not None
