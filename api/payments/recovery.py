"""How payment routes cope with a workflow that cannot be reached or that has ended without
finishing its payment (e.g. `temporal workflow terminate`): they answer from the row.

A transfer whose workflow ended is settled on the spot: nothing was posted (posting and
completing the row are one transaction), so it is failed with the reason, or cancelled when
the customer asked for that. An external payment's money may be at the rail, so only the
reconciler (which asks the rail) resolves it; the route answers from the row meanwhile.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.payment_recovery import (
    WorkflowFate,
    ended_reason,
    resolve_payment,
    workflow_fate,
)
from activities.payment_starts import start_payment_workflow
from api.ownership import owned_payment
from api.payments.errors import NotCancellable
from api.services import Services
from api.unavailable import temporal_down, unavailable
from core.db import transaction
from models.payments.payloads import PaymentState, ResolvedPayment, ResolvePaymentInput
from models.payments.tables import Payment, PaymentKind, PaymentStatus

CANCELLED_AFTER_STOP = "cancelled by the customer (its workflow had stopped)"


async def start_or_settle(
    services: Services, payment: Payment
) -> WorkflowHandle[Any, PaymentState] | None:
    """Start (or attach to) the payment's workflow; None when its workflow has ended (the
    payment is settled from the row instead). Temporal unreachable: a 503 that says the
    payment is recorded and will go ahead (the reconciler starts it when Temporal is back)."""
    try:
        return await start_payment_workflow(
            services.temporal, services.reads, services.settings, payment
        )
    except WorkflowAlreadyStartedError:
        await settle_ended(services, payment)
        return None
    except (RPCError, RuntimeError) as exc:
        if not temporal_down(exc):
            raise
        retry = services.settings.unavailable_retry_after_seconds
        detail = (
            "the payment is recorded and will be processed once the workflow service is "
            "back; send the same request with the same Idempotency-Key to follow it"
        )
        raise unavailable("temporal", retry, detail, payment_id=str(payment.id)) from exc


async def settle_ended(services: Services, payment: Payment) -> Payment:
    """The payment as it stands once its ended workflow is accounted for (a transfer whose
    workflow ended unfinished is failed now; an external payment waits for the reconciler)."""
    if payment.kind == PaymentKind.INTERNAL_TRANSFER and not _terminal(payment):
        fate, name = await workflow_fate(services.temporal, payment.workflow_id)
        if fate == WorkflowFate.ENDED:
            await _resolve(services, payment, PaymentStatus.FAILED, ended_reason(name))
    return await owned_payment(services, payment.user_id, payment.id)


async def cancel_ended(services: Services, payment: Payment) -> Payment:
    """Cancel a payment whose workflow has ended (or 409): a transfer is cancelled from the
    row (nothing was posted); an external payment must first be reconciled with the rail."""
    fate, _ = await workflow_fate(services.temporal, payment.workflow_id)
    if fate != WorkflowFate.ENDED:
        current = await owned_payment(services, payment.user_id, payment.id)
        raise NotCancellable(f"payment is {current.status}")
    if payment.kind != PaymentKind.INTERNAL_TRANSFER:
        raise NotCancellable(
            "the payment's workflow has stopped; it is being reconciled with the rail"
        )
    done = await _resolve(services, payment, PaymentStatus.CANCELLED, CANCELLED_AFTER_STOP)
    if not done.changed and done.status != PaymentStatus.CANCELLED:
        raise NotCancellable(f"payment is already {done.status.value}")
    return await owned_payment(services, payment.user_id, payment.id)


async def _resolve(
    services: Services, payment: Payment, outcome: PaymentStatus, reason: str
) -> ResolvedPayment:
    async with transaction(services.sessions) as session:
        return await resolve_payment(
            session,
            ResolvePaymentInput(payment_id=payment.id, outcome=outcome, reason=reason, actor="api"),
        )


def _terminal(payment: Payment) -> bool:
    return PaymentStatus(payment.status).is_terminal
