"""Payment activities: keep the payment read model in step with the workflow, assess risk."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import ledger
from core.db import SessionFactory, transaction
from models.base import utcnow
from models.ledger.payloads import LedgerTransferInput
from models.payments.payloads import RiskDecision, RiskInput, SetPaymentStatusInput, TransferPosted
from models.payments.tables import TERMINAL_STATUSES, Payment, PaymentStatus
from temporal.deterministic import input_refusals_are_final

TRANSFER_KEY_PREFIX = "transfer:"
PAYMENT_ALREADY_RESOLVED = "PaymentAlreadyResolved"


def transfer_key(payment_id: uuid.UUID) -> str:
    """The ledger idempotency key of a payment's transfer entry."""
    return f"{TRANSFER_KEY_PREFIX}{payment_id}"


def _payment_id(req: LedgerTransferInput) -> uuid.UUID:
    if not req.idempotency_key.startswith(TRANSFER_KEY_PREFIX):
        raise ValueError("a payment transfer's key is transfer:<payment id>")
    return uuid.UUID(req.idempotency_key.removeprefix(TRANSFER_KEY_PREFIX))


class PaymentActivities:
    """Activities shared by the payment workflows."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        reads: SessionFactory | None = None,
        max_single_payment_minor: int,
        max_payments_per_hour: int,
        review_threshold_minor: int,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions
        self._max_single = max_single_payment_minor
        self._max_per_hour = max_payments_per_hour
        self._review_threshold = review_threshold_minor

    @activity.defn(name="payments.set_status")
    async def set_status(self, change: SetPaymentStatusInput) -> None:
        """Record a status change; a terminal status is never overwritten (idempotent)."""
        async with transaction(self._sessions) as session:
            payment = await session.get(Payment, change.payment_id, with_for_update=True)
            if payment is None or PaymentStatus(payment.status).is_terminal:
                return
            now = utcnow()
            payment.status, payment.updated_at = change.status, now
            # The reason belongs to this status: a later status without one clears it.
            payment.failure_reason = change.failure_reason[:500] if change.failure_reason else None
            if change.rail_payment_id is not None:
                payment.rail_payment_id = change.rail_payment_id
            if change.status.is_terminal:
                payment.completed_at = now

    @activity.defn(name="payments.post_transfer")
    async def post_transfer(self, req: LedgerTransferInput) -> TransferPosted:
        """Post the transfer and mark its payment completed in the same transaction, so the
        read model can never disagree with the ledger (idempotent via the ledger key)."""
        now = utcnow()
        payment_id = _payment_id(req)
        with input_refusals_are_final():
            async with transaction(self._sessions) as session:
                # The row first: its lock orders this against an ops resolution of the payment
                # (activities/payment_recovery.py), so a resolved payment is never posted after.
                completed = await session.execute(
                    update(Payment)
                    .where(
                        col(Payment.id) == payment_id,
                        col(Payment.status).not_in([s.value for s in TERMINAL_STATUSES]),
                    )
                    .values(status=PaymentStatus.COMPLETED, updated_at=now, completed_at=now)
                    .execution_options(synchronize_session=False)
                )
                if not completed.rowcount:  # type: ignore[attr-defined]
                    status = await session.scalar(
                        select(col(Payment.status)).where(col(Payment.id) == payment_id)
                    )
                    if status is not None and status != PaymentStatus.COMPLETED:
                        raise ApplicationError(
                            f"the payment was already resolved as {status}",
                            type=PAYMENT_ALREADY_RESOLVED,
                            non_retryable=True,
                        )
                entry = await ledger.transfer(session, req)
        done = now if completed.rowcount else None  # type: ignore[attr-defined]
        return TransferPosted(entry_id=entry.entry_id, completed_at=done)

    @activity.defn(name="payments.assess_risk")
    async def assess_risk(self, inp: RiskInput) -> RiskDecision:
        """Rule-based risk: a per-payment cap, a velocity limit, and a review threshold."""
        if inp.amount > self._max_single:
            return RiskDecision(decision="deny", reason="amount above the single-payment limit")
        async with self._reads() as session:
            recent = await session.scalar(
                select(func.count())
                .select_from(Payment)
                .where(
                    col(Payment.user_id) == inp.user_id,
                    col(Payment.id) != inp.payment_id,
                    col(Payment.created_at) > utcnow() - timedelta(hours=1),
                )
            )
        if (recent or 0) >= self._max_per_hour:
            return RiskDecision(decision="deny", reason="too many payments in the last hour")
        if inp.amount >= self._review_threshold:
            return RiskDecision(decision="review", reason="large amount: customer approval needed")
        return RiskDecision(decision="allow")
