"""Payments that must never stay stuck: rows whose workflow never started (stranded), and
payments whose workflow ended (terminated, failed, timed out) without finishing them.

- `workflow_fate` says what Temporal knows of a payment's workflow id.
- `resolve_payment` gives a non-terminal payment its final status in one transaction: the row
  is locked, the hold is captured or released through the ledger's idempotent functions (so
  exactly once), the change is audited. A payment already terminal is left as it is.
- `rail_verdict` turns the rail's word on an external payment into that final status.
- `PaymentRecoveryActivities` are what `ReconcileStrandedWorkflow` runs on a schedule.

`post_transfer` locks the payment row before it posts, so a transfer resolved here can never
be posted afterwards by a workflow still running an old activity (and the other way round).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import ledger
from activities.payment_starts import start_payment_workflow
from activities.payments import transfer_key
from core.db import SessionFactory, transaction
from core.logging import get_logger
from core.settings import Settings
from models.audit import record_audit
from models.base import utcnow
from models.ledger.payloads import CaptureHoldInput, LedgerTransferInput, ReleaseHoldInput
from models.ledger.tables import Hold, HoldStatus, JournalEntry
from models.payments.payloads import (
    RailPaymentSnapshot,
    ReconcileCandidate,
    RecoverStrandedInput,
    RecoverStrandedResult,
    ResolvedPayment,
    ResolvePaymentInput,
)
from models.payments.tables import TERMINAL_STATUSES, Payment, PaymentKind, PaymentStatus

log = get_logger(__name__)
RESOLUTION_REFUSED: Final = "PaymentResolutionRefused"


class WorkflowFate(StrEnum):
    """What Temporal knows of a workflow id."""

    MISSING = "missing"  # never started (or purged after retention)
    RUNNING = "running"
    COMPLETED = "completed"
    ENDED = "ended"  # terminated, failed, timed out or cancelled: it will do nothing more


async def workflow_fate(client: Client, workflow_id: str) -> tuple[WorkflowFate, str]:
    """The fate of a workflow id and Temporal's status name (`terminated`, ...)."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return WorkflowFate.MISSING, "not found"
        raise
    status = described.status
    name = status.name.lower() if status is not None else "unknown"
    if status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW):
        return WorkflowFate.RUNNING, name
    if status == WorkflowExecutionStatus.COMPLETED:
        return WorkflowFate.COMPLETED, name
    return WorkflowFate.ENDED, name


def refused(message: str) -> ApplicationError:
    """A resolution that must not happen (it would contradict the ledger)."""
    return ApplicationError(message, type=RESOLUTION_REFUSED, non_retryable=True)


def rail_verdict(
    found: RailPaymentSnapshot | None, candidate: ReconcileCandidate
) -> tuple[PaymentStatus, str | None] | None:
    """The final status the rail's report means for a payment whose workflow has ended; None
    while the rail still has it pending (the money may yet leave)."""
    if found is None:
        return PaymentStatus.FAILED, "its workflow ended and the rail has no record of it"
    why = found.disagreement(candidate.rail_payment_id, candidate.amount, candidate.currency)
    if why is not None:  # our instruction never reached the rail: nothing of ours was sent
        return PaymentStatus.FAILED, f"the rail holds another payment under our reference: {why}"
    if found.status == "settled":
        return PaymentStatus.COMPLETED, None
    if found.status == "rejected":
        return PaymentStatus.REJECTED, f"rejected by the rail: {found.reason or 'no reason'}"
    if found.status == "cancelled":
        return PaymentStatus.CANCELLED, "cancelled at the rail"
    return None


async def _settle_hold(session: AsyncSession, payment: Payment, outcome: PaymentStatus) -> str:
    """Capture (completed) or release (any other outcome) the payment's hold, once."""
    hold = (
        await session.execute(
            select(Hold).where(col(Hold.idempotency_key) == f"payment:{payment.id}:hold")
        )
    ).scalar_one_or_none()
    completing = outcome == PaymentStatus.COMPLETED
    if hold is None:
        if completing:
            raise refused("the payment has no hold to capture: no money was reserved")
        return "none"
    status = HoldStatus(hold.status)
    if status == HoldStatus.PENDING:
        if completing:
            await ledger.capture_hold(
                session, CaptureHoldInput(hold_id=hold.id, owner_user_id=payment.user_id)
            )
            return "captured"
        await ledger.release_hold(
            session, ReleaseHoldInput(hold_id=hold.id, owner_user_id=payment.user_id)
        )
        return "released"
    if status == HoldStatus.CAPTURED:
        if not completing:
            raise refused("the hold was captured (the money left): it can only be completed")
        return "already captured"
    if completing:
        raise refused(f"the hold is already {status.value}: there is no money left to capture")
    return f"already {status.value}"


async def resolve_payment(session: AsyncSession, inp: ResolvePaymentInput) -> ResolvedPayment:
    """Give the payment its final status in the caller's transaction (see the module doc)."""
    payment = await session.get(Payment, inp.payment_id, with_for_update=True)
    if payment is None:
        raise refused(f"unknown payment {inp.payment_id}")
    if PaymentStatus(payment.status).is_terminal:
        return ResolvedPayment(payment_id=payment.id, status=payment.status, changed=False)
    if not inp.outcome.is_terminal:
        raise refused(f"{inp.outcome.value} is not a final status")
    previous = PaymentStatus(payment.status)
    hold: str | None = None
    if payment.kind == PaymentKind.EXTERNAL:
        hold = await _settle_hold(session, payment, inp.outcome)
    elif inp.outcome == PaymentStatus.COMPLETED:
        assert payment.to_account_id is not None
        await ledger.transfer(
            session,
            LedgerTransferInput(
                idempotency_key=transfer_key(payment.id),
                from_account_id=payment.from_account_id,
                to_account_id=payment.to_account_id,
                amount=payment.amount,
                currency=payment.currency,
                description=payment.description,
                owner_user_id=payment.user_id,
            ),
        )
    elif await session.scalar(
        select(col(JournalEntry.id)).where(
            col(JournalEntry.idempotency_key) == transfer_key(payment.id)
        )
    ):
        raise refused("the transfer was posted: it can only be completed")
    now = utcnow()
    payment.status, payment.updated_at = inp.outcome, now
    payment.failure_reason = inp.reason[:500] if inp.reason else None
    payment.completed_at = now
    await record_audit(
        session,
        "payment.resolved",
        subject=str(payment.id),
        client=inp.actor,
        details={
            "outcome": inp.outcome.value,
            "previous": previous.value,
            "reason": inp.reason,
            "hold": hold,
        },
    )
    log.info(
        "payment resolved",
        payment_id=str(payment.id),
        outcome=inp.outcome.value,
        actor=inp.actor,
        hold=hold,
    )
    return ResolvedPayment(payment_id=payment.id, status=inp.outcome, changed=True, hold=hold)


def ended_reason(fate_name: str) -> str:
    """The failure reason of a payment whose workflow ended without finishing it."""
    return f"its workflow was {fate_name} before the payment finished"


class PaymentRecoveryActivities:
    """Find stranded payments and start their workflows; resolve payments left unfinished."""

    def __init__(self, sessions: SessionFactory, temporal: Client, settings: Settings) -> None:
        self._sessions = sessions
        self._temporal = temporal
        self._settings = settings

    @activity.defn(name="payments.recover_stranded")
    async def recover_stranded(self, inp: RecoverStrandedInput) -> RecoverStrandedResult:
        """Check one page of non-terminal payments older than the grace period: start the
        missing workflows (same id, same input), fail transfers whose workflow ended, and hand
        back the external payments whose workflow ended (the rail decides those)."""
        query = select(Payment).where(
            col(Payment.status).not_in([s.value for s in TERMINAL_STATUSES]),
            col(Payment.updated_at) < utcnow() - timedelta(seconds=inp.grace_seconds),
        )
        if inp.after_created_at is not None and inp.after_id is not None:
            query = query.where(
                tuple_(col(Payment.created_at), col(Payment.id))
                > tuple_(inp.after_created_at, inp.after_id)
            )
        query = query.order_by(col(Payment.created_at), col(Payment.id)).limit(inp.limit)
        async with self._sessions() as session:
            rows = list((await session.execute(query)).scalars())
        result = RecoverStrandedResult(checked=len(rows))
        for payment in rows:
            activity.heartbeat(str(payment.id))
            await self._recover(payment, result)
        if len(rows) == inp.limit:
            result.next_created_at, result.next_id = rows[-1].created_at, rows[-1].id
        return result

    async def _recover(self, payment: Payment, result: RecoverStrandedResult) -> None:
        fate, name = await workflow_fate(self._temporal, payment.workflow_id)
        if fate == WorkflowFate.MISSING:
            try:
                await start_payment_workflow(
                    self._temporal, self._sessions, self._settings, payment
                )
            except WorkflowAlreadyStartedError:  # started and ended since we looked: next run
                return
            log.warning("stranded payment: workflow started", payment_id=str(payment.id))
            result.started.append(payment.id)
        elif fate == WorkflowFate.ENDED and payment.kind == PaymentKind.INTERNAL_TRANSFER:
            await self._resolve(payment.id, PaymentStatus.FAILED, ended_reason(name))
            result.resolved.append(payment.id)
        elif fate == WorkflowFate.ENDED:
            result.to_reconcile.append(
                ReconcileCandidate(
                    payment_id=payment.id,
                    amount=payment.amount,
                    currency=payment.currency,
                    rail_payment_id=payment.rail_payment_id,
                )
            )

    async def _resolve(
        self, payment_id: uuid.UUID, outcome: PaymentStatus, reason: str
    ) -> ResolvedPayment:
        async with transaction(self._sessions) as session:
            return await resolve_payment(
                session,
                ResolvePaymentInput(
                    payment_id=payment_id, outcome=outcome, reason=reason, actor="reconciler"
                ),
            )

    @activity.defn(name="payments.resolve")
    async def resolve(self, inp: ResolvePaymentInput) -> ResolvedPayment:
        """Resolve one payment (one transaction; a terminal payment is left as it is)."""
        async with transaction(self._sessions) as session:
            return await resolve_payment(session, inp)

    def all(self) -> list[object]:
        """The activities to register on the main queue."""
        return [self.recover_stranded, self.resolve]
