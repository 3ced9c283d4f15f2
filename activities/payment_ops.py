"""Ops actions that bring one payment to a final state: reconcile it with its workflow and the
rail, or force the outcome of one the rail does not know. Behind `vortex payments ...` and the
staff ops routes; both audit through `resolve_payment`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.ledger import LedgerError
from activities.payment_recovery import (
    WorkflowFate,
    ended_reason,
    rail_verdict,
    resolve_payment,
    workflow_fate,
)
from activities.payment_starts import start_payment_workflow
from activities.providers.rail import PaymentRail, RailError, RailNotFoundError
from activities.rail_payments import snapshot
from core.db import SessionFactory, transaction
from core.settings import Settings
from models.payments.payloads import (
    RailPaymentSnapshot,
    ReconcileCandidate,
    ResolvedPayment,
    ResolvePaymentInput,
)
from models.payments.tables import Payment, PaymentKind, PaymentStatus

OUTCOMES = {"failed": PaymentStatus.FAILED, "completed": PaymentStatus.COMPLETED}


@dataclass(frozen=True)
class Ops:
    """What an ops action works with."""

    settings: Settings
    sessions: SessionFactory
    temporal: Client
    rail: PaymentRail
    actor: str


class Refused(Exception):
    """The action was not taken; the message says why (exit code 1)."""


async def _payment(ops: Ops, payment_id: uuid.UUID) -> Payment:
    async with ops.sessions() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None:
        raise Refused(f"no payment {payment_id}")
    return payment


async def _at_rail(ops: Ops, payment: Payment) -> RailPaymentSnapshot | None:
    """The rail's view of the payment (None: it has no record of it)."""
    try:
        return snapshot(await ops.rail.status(str(payment.id)))
    except RailNotFoundError:
        return None
    except RailError as exc:
        raise Refused(f"the rail cannot be reached to check the payment: {exc}") from exc


async def _resolve(
    ops: Ops, payment: Payment, outcome: PaymentStatus, reason: str | None
) -> ResolvedPayment:
    try:
        async with transaction(ops.sessions) as session:
            return await resolve_payment(
                session,
                ResolvePaymentInput(
                    payment_id=payment.id, outcome=outcome, reason=reason, actor=ops.actor
                ),
            )
    except (ApplicationError, LedgerError) as exc:
        raise Refused(f"refused: {exc}") from exc


def _said(done: ResolvedPayment) -> str:
    if not done.changed:
        return f"payment {done.payment_id} is already {done.status.value}: nothing changed"
    hold = f" (hold: {done.hold})" if done.hold else ""
    return f"payment {done.payment_id} resolved as {done.status.value}{hold}"


async def reconcile(ops: Ops, payment_id: uuid.UUID) -> str:
    """Bring one payment in line with its workflow and the rail; returns what was done."""
    payment = await _payment(ops, payment_id)
    if PaymentStatus(payment.status).is_terminal:
        return f"payment {payment_id} is already {payment.status}: nothing to do"
    fate, name = await workflow_fate(ops.temporal, payment.workflow_id)
    if fate == WorkflowFate.MISSING:
        await start_payment_workflow(ops.temporal, ops.sessions, ops.settings, payment)
        return f"payment {payment_id} was stranded: its workflow {payment.workflow_id} started"
    if fate != WorkflowFate.ENDED:
        return (
            f"payment {payment_id} is {payment.status} and its workflow is {name}: nothing to "
            "reconcile (if the rail lost it, `vortex payments resolve` settles it by hand)"
        )
    if payment.kind == PaymentKind.INTERNAL_TRANSFER:
        return _said(await _resolve(ops, payment, PaymentStatus.FAILED, ended_reason(name)))
    candidate = ReconcileCandidate(
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        rail_payment_id=payment.rail_payment_id,
    )
    verdict = rail_verdict(await _at_rail(ops, payment), candidate)
    if verdict is None:
        raise Refused(f"payment {payment_id} is still pending at the rail: try again later")
    return _said(await _resolve(ops, payment, *verdict))


async def force_resolve(
    ops: Ops, payment_id: uuid.UUID, outcome: PaymentStatus, reason: str
) -> str:
    """Settle a payment the rail does not know with the outcome ops decided; returns what was
    done. Its running workflow (if any) is terminated first, so nothing acts on it after."""
    payment = await _payment(ops, payment_id)
    if PaymentStatus(payment.status).is_terminal:
        return f"payment {payment_id} is already {payment.status}: nothing changed"
    if payment.kind == PaymentKind.EXTERNAL:
        found = await _at_rail(ops, payment)
        if found is not None:
            raise Refused(
                f"the rail knows payment {payment_id} ({found.status}): "
                "use `vortex payments reconcile` (or wait for the rail)"
            )
    fate, _ = await workflow_fate(ops.temporal, payment.workflow_id)
    if fate == WorkflowFate.RUNNING:
        await ops.temporal.get_workflow_handle(payment.workflow_id).terminate(
            reason=f"resolved by ops ({ops.actor}): {reason}"
        )
    return _said(await _resolve(ops, payment, outcome, f"resolved by ops: {reason}"))
