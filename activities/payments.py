"""Payment activities: keep the payment read model in step with the workflow, assess risk."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import ledger
from activities.security.freezes import active_freeze_kinds, refuse_if_frozen
from activities.security.risk import RiskPolicy, gather_facts, score_risk
from core.db import SessionFactory, transaction
from core.logging import get_logger
from core.metrics import PAYMENT_STATUS, TRANSFERRED_MINOR, TRANSFERS, count_after_commit
from models.base import utcnow
from models.ledger.payloads import LedgerTransferInput
from models.payments.payloads import RiskDecision, RiskInput, SetPaymentStatusInput, TransferPosted
from models.payments.tables import TERMINAL_STATUSES, Payment, PaymentKind, PaymentStatus
from temporal.deterministic import input_refusals_are_final

log = get_logger(__name__)
TRANSFER_KEY_PREFIX = "transfer:"
PAYMENT_ALREADY_RESOLVED = "PaymentAlreadyResolved"


def transfer_key(payment_id: uuid.UUID) -> str:
    """The ledger idempotency key of a payment's transfer entry."""
    return f"{TRANSFER_KEY_PREFIX}{payment_id}"


def _payment_id(req: LedgerTransferInput) -> uuid.UUID:
    if not req.idempotency_key.startswith(TRANSFER_KEY_PREFIX):
        raise ValueError("a payment transfer's key is transfer:<payment id>")
    return uuid.UUID(req.idempotency_key.removeprefix(TRANSFER_KEY_PREFIX))


def _count_transfer(connection: AsyncConnection, req: LedgerTransferInput) -> None:
    """Business metrics of a completed transfer, counted once its transaction commits."""
    kind = PaymentKind.INTERNAL_TRANSFER
    count_after_commit(connection, PAYMENT_STATUS.labels(kind, PaymentStatus.COMPLETED))
    count_after_commit(connection, TRANSFERS.labels(req.currency))
    count_after_commit(connection, TRANSFERRED_MINOR.labels(req.currency), req.amount)


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
        review_score: int = 80,
        lookback_days: int = 90,
        recent_hours: int = 72,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions
        self._policy = RiskPolicy(
            max_single_minor=max_single_payment_minor,
            max_per_hour=max_payments_per_hour,
            review_threshold_minor=review_threshold_minor,
            review_score=review_score,
        )
        self._lookback_days, self._recent_hours = lookback_days, recent_hours

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
            count_after_commit(
                await session.connection(), PAYMENT_STATUS.labels(payment.kind, change.status)
            )

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
                # It also brings the source's active freezes: one statement fewer per transfer.
                completed = (
                    await session.execute(
                        update(Payment)
                        .where(
                            col(Payment.id) == payment_id,
                            col(Payment.status).not_in([s.value for s in TERMINAL_STATUSES]),
                        )
                        .values(status=PaymentStatus.COMPLETED, updated_at=now, completed_at=now)
                        .returning(active_freeze_kinds(req.from_account_id))
                        .execution_options(synchronize_session=False)
                    )
                ).first()
                if completed is None:
                    status = await session.scalar(
                        select(col(Payment.status)).where(col(Payment.id) == payment_id)
                    )
                    if status is not None and status != PaymentStatus.COMPLETED:
                        raise ApplicationError(
                            f"the payment was already resolved as {status}",
                            type=PAYMENT_ALREADY_RESOLVED,
                            non_retryable=True,
                        )
                else:
                    # Not on a replay of a posted transfer: that keeps its first result.
                    refuse_if_frozen(req.from_account_id, completed[0])
                    _count_transfer(await session.connection(), req)
                entry = await ledger.transfer(session, req)
        done = now if completed is not None else None
        if done:
            log.info("transfer posted", payment_id=str(payment_id), entry_id=str(entry.entry_id))
        return TransferPosted(entry_id=entry.entry_id, completed_at=done)

    @activity.defn(name="payments.assess_risk")
    async def assess_risk(self, inp: RiskInput) -> RiskDecision:
        """The risk engine (`activities.security.risk`, shared with the API's assessment): hard
        limits deny, a large amount or a high score sends the payment to review."""
        async with self._reads() as session:
            facts = await gather_facts(  # the beneficiary read from the payment row
                session,
                user_id=inp.user_id,
                amount=inp.amount,
                currency=inp.currency,
                payment_id=inp.payment_id,
                lookback_days=self._lookback_days,
                recent_hours=self._recent_hours,
            )
        result = score_risk(facts, self._policy, self._recent_hours)
        return RiskDecision(decision=result.decision, reason=result.reason, score=result.score)
