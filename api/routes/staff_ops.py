"""Ops routes: what the runbook does by CLI, for staff with the `ops` role (all audited).

List payments by status, retry or cancel a payment (the workflows' `ops_retry`/`ops_cancel`
signals), fund an account (`vortex ledger fund`), and reconcile or resolve a stranded payment
(`vortex payments reconcile|resolve`: the same functions, with the staff member as the actor).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select
from sqlmodel import col
from temporalio.service import RPCError, RPCStatusCode

from activities.ledger import LedgerError
from activities.ledger.ops_funding import fund_by_number
from activities.payment_ops import OUTCOMES, Ops, Refused, force_resolve, reconcile
from activities.providers.rail import HttpPaymentRail
from activities.security.freezes import ensure_not_frozen
from api.deps import ClientDep, ServicesDep
from api.payments.errors import NotCancellable, NotRetryable
from api.payments.flow import payment_public
from api.services import Services
from api.staff import StaffCaller, audit_staff_action, require_roles
from core import errors
from models.money import AmountError, CurrencyError
from models.payments.schemas import PaymentPage
from models.payments.tables import Payment, PaymentKind, PaymentStatus
from models.security.schemas import FundBody, Funded, OpsOutcome, ReasonBody, ResolveBody
from models.staff.tables import StaffRole

router = APIRouter(prefix="/api/staff/ops", tags=["staff"])
OpsStaff = Annotated[StaffCaller, Depends(require_roles(StaffRole.OPS))]


class OpsRefused(errors.Conflict):
    """The ops action was not taken (the CLI's refusal, as a problem)."""

    type, title = "ops-refused", "The ops action was refused"


async def _payment(services: Services, payment_id: uuid.UUID) -> Payment:
    async with services.reads() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None:
        raise errors.NotFound("unknown payment")
    return payment


@router.get("/payments")
async def list_payments(
    staff: OpsStaff,
    services: ServicesDep,
    status_: Annotated[PaymentStatus, Query(alias="status")],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> PaymentPage:
    """Payments in one status, oldest first (the ones waiting longest come first)."""
    async with services.reads() as session:
        rows = await session.execute(
            select(Payment)
            .where(col(Payment.status) == status_)
            .order_by(col(Payment.created_at), col(Payment.id))
            .limit(limit)
        )
    return PaymentPage(items=[payment_public(p) for p in rows.scalars()])


async def _signal(
    services: Services, payment: Payment, name: str, refusal: type[errors.AppError]
) -> None:
    if payment.kind != PaymentKind.EXTERNAL or PaymentStatus(payment.status).is_terminal:
        raise refusal(f"payment is {payment.status} ({payment.kind})")
    try:
        await services.temporal.get_workflow_handle(payment.workflow_id).signal(name)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unreachable: a 503
        raise refusal("the payment's workflow is not running; reconcile it") from exc


@router.post("/payments/{payment_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry_payment(
    payment_id: uuid.UUID,
    body: ReasonBody,
    staff: OpsStaff,
    services: ServicesDep,
    client: ClientDep,
) -> OpsOutcome:
    """Submit again an external payment waiting in `requires_action` (`ops_retry`)."""
    payment = await _payment(services, payment_id)
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        raise NotRetryable(f"payment is {payment.status}, not requires_action")
    async with services.reads() as session:  # a retry would submit: not from a frozen account
        await ensure_not_frozen(session, payment.from_account_id)
    await _signal(services, payment, "ops_retry", NotRetryable)
    await audit_staff_action(
        services, staff, "staff.payment_retry", str(payment_id), client, reason=body.reason
    )
    return OpsOutcome(payment_id=payment_id, outcome="retry requested")


@router.post("/payments/{payment_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_payment(
    payment_id: uuid.UUID,
    body: ReasonBody,
    staff: OpsStaff,
    services: ServicesDep,
    client: ClientDep,
) -> OpsOutcome:
    """Cancel an external payment (`ops_cancel`; the workflow settles it, hold released)."""
    payment = await _payment(services, payment_id)
    await _signal(services, payment, "ops_cancel", NotCancellable)
    await audit_staff_action(
        services, staff, "staff.payment_cancel", str(payment_id), client, reason=body.reason
    )
    return OpsOutcome(payment_id=payment_id, outcome="cancellation requested")


@contextlib.asynccontextmanager
async def _ops(services: Services, staff: StaffCaller) -> AsyncIterator[Ops]:
    """The CLI's ops actions as this staff member, with a rail client for the call; a refusal
    becomes a 409."""
    rail = HttpPaymentRail(services.settings.rail_url)
    try:
        yield Ops(services.settings, services.sessions, services.temporal, rail, staff.actor)
    except Refused as exc:
        raise OpsRefused(str(exc)) from exc
    finally:
        await rail.aclose()


@router.post("/payments/{payment_id}/reconcile")
async def reconcile_payment(
    payment_id: uuid.UUID,
    body: ReasonBody,
    staff: OpsStaff,
    services: ServicesDep,
    client: ClientDep,
) -> OpsOutcome:
    """`vortex payments reconcile`: start a stranded payment's workflow or settle it."""
    await _payment(services, payment_id)
    await audit_staff_action(
        services, staff, "staff.payment_reconcile", str(payment_id), client, reason=body.reason
    )
    async with _ops(services, staff) as ops:
        said = await reconcile(ops, payment_id)
    return OpsOutcome(payment_id=payment_id, outcome=said)


@router.post("/payments/{payment_id}/resolve")
async def resolve_payment(
    payment_id: uuid.UUID,
    body: ResolveBody,
    staff: OpsStaff,
    services: ServicesDep,
    client: ClientDep,
) -> OpsOutcome:
    """`vortex payments resolve`: force the outcome of a payment the rail does not know."""
    await _payment(services, payment_id)
    await audit_staff_action(
        services,
        staff,
        "staff.payment_resolve",
        str(payment_id),
        client,
        reason=body.reason,
        outcome=body.outcome,
    )
    async with _ops(services, staff) as ops:
        said = await force_resolve(ops, payment_id, OUTCOMES[body.outcome], body.reason)
    return OpsOutcome(payment_id=payment_id, outcome=said)


@router.post("/fund")
async def fund(body: FundBody, staff: OpsStaff, services: ServicesDep, client: ClientDep) -> Funded:
    """`vortex ledger fund`: credit a customer account from external settlement (the
    reference is the idempotency key: a repeat returns the first entry)."""
    try:
        entry = await fund_by_number(
            services.sessions,
            body.account_number,
            body.amount,
            body.reference,
            body.reason,
            client=staff.actor,
        )
    except (AmountError, CurrencyError) as exc:
        raise errors.InvalidInput(str(exc)) from exc
    except LedgerError as exc:
        if exc.type == "UnknownAccount":
            raise errors.NotFound("no customer account with that number") from exc
        raise
    await audit_staff_action(
        services,
        staff,
        "staff.fund",
        body.account_number,
        client,
        reason=body.reason,
        reference=body.reference,
        entry_id=str(entry.entry_id),
    )
    return Funded(entry_id=entry.entry_id)
