"""The idempotent "create a payment and start its workflow" flow shared by transfers and
external payments, and the pieces both answer with.

The payment row maps the caller's Idempotency-Key (its digest) to one payment and so to one
workflow id: a retry finds the row (same body: the same payment; another body: 422), a
concurrent duplicate loses the INSERT race and gets the winner's row. Starting the workflow is
idempotent too (USE_EXISTING), so every retry also heals a start that was lost, and the
stranded-payment reconciler heals it for a client that never retries.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.ledger.errors import InsufficientFunds
from api.services import Services
from core.db import SessionFactory, transaction
from core.errors import IdempotencyKeyReused
from models.ledger.tables import LedgerAccount
from models.money import Money
from models.payments.schemas import PaymentPublic
from models.payments.tables import Payment


async def existing_payment(session: AsyncSession, user_id: uuid.UUID, key: str) -> Payment | None:
    """The caller's payment already made with this Idempotency-Key, if any."""
    found: Payment | None = (
        await session.execute(
            select(Payment).where(
                col(Payment.user_id) == user_id, col(Payment.idempotency_key) == key
            )
        )
    ).scalar_one_or_none()
    return found


def replayed(previous: Payment, body_hash: str) -> Payment:
    """A retry must carry the same request as the first time."""
    if previous.request_hash != body_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    return previous


@dataclass(frozen=True)
class Claimed:
    """The payment a request maps to; `created` if this request inserted it, `replay` if it
    existed before this request looked (a retry) rather than being won by a concurrent one."""

    payment: Payment
    created: bool
    replay: bool


async def claim_payment(
    services: Services,
    *,
    user_id: uuid.UUID,
    key: str,
    body_hash: str,
    prepare: Callable[[AsyncSession], Awaitable[Callable[[uuid.UUID], Payment]]],
    on_first: Callable[[Any, Payment], Awaitable[None]],
) -> Claimed:
    """The caller's payment for this key: the existing one (checked against the body), or a
    new one from `prepare` (which validates with the read session it is given and returns the
    row factory) inserted with `on_first` (the audit) in the same transaction."""
    async with services.reads() as session:
        previous = await existing_payment(session, user_id, key)
        new_payment = await prepare(session) if previous is None else None
    if previous is not None:
        return Claimed(replayed(previous, body_hash), created=False, replay=True)
    assert new_payment is not None
    payment, created = await claim(
        services.sessions,
        new_payment,
        user_id=user_id,
        key=key,
        body_hash=body_hash,
        on_first=on_first,
    )
    return Claimed(payment, created=created, replay=False)


def payment_public(payment: Payment) -> PaymentPublic:
    """The API view of a payment row."""
    return PaymentPublic(
        id=payment.id,
        kind=payment.kind,
        status=payment.status,
        amount=Money.of(payment.amount, payment.currency),
        from_account_id=payment.from_account_id,
        to_account_id=payment.to_account_id,
        payment_method_id=payment.payment_method_id,
        description=payment.description,
        execute_at=payment.execute_at,
        failure_reason=payment.failure_reason,
        created_at=payment.created_at,
        updated_at=payment.updated_at,
        completed_at=payment.completed_at,
        status_url=f"/api/payments/{payment.id}/status",
    )


def ensure_available(source: LedgerAccount, amount: int) -> None:
    """Refuse up front (creating nothing) when the available balance cannot cover `amount`;
    the ledger re-checks under its row locks when the money moves."""
    if source.posted - source.held < amount:
        raise InsufficientFunds(
            "the source account's available balance is too low",
            available=Money.of(source.posted - source.held, source.currency).amount,
        )


async def claim(
    sessions: SessionFactory,
    new_payment: Callable[[uuid.UUID], Payment],
    *,
    user_id: uuid.UUID,
    key: str,
    body_hash: str,
    on_first: Callable[[Any, Payment], Awaitable[None]] | None = None,
) -> tuple[Payment, bool]:
    """Insert the payment for this key, or return the one already there; (payment, created)."""
    candidate = new_payment(uuid.uuid4())
    async with transaction(sessions) as session:
        values = candidate.model_dump(exclude={"created_at", "updated_at"})
        # One statement in the common case: the new row comes back, or nothing on a conflict.
        row = (await session.execute(_CLAIM, values)).one_or_none()
        if row is None:
            existing = await existing_payment(session, user_id, key)
            assert existing is not None  # the conflict was on this very (user, key)
            return replayed(existing, body_hash), False
        inserted = Payment(**row._mapping)
        if on_first is not None:
            await on_first(session, inserted)
    return inserted, True


# A Core statement built once: the ORM insert re-derives a cache key from every call's values.
_PAYMENTS: Table = Payment.__table__  # type: ignore[attr-defined]
_CLAIM = (
    insert(_PAYMENTS)
    .on_conflict_do_nothing(constraint="ux_payments_user_idempotency_key")
    .returning(*_PAYMENTS.columns)
)


def update_refusal(exc: WorkflowUpdateFailedError) -> str:
    """Why a workflow refused an update (its validator's message)."""
    return exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc)
