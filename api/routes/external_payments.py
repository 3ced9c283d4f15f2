"""External payments to saved beneficiaries (ExternalPaymentWorkflow): create, approve, retry.

Status and cancellation use the generic `GET /api/payments/{id}/status` and
`POST /api/payments/{id}/cancel` routes (the workflow has the `status` query and the `cancel`
update they call by name).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response, status
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode

from activities.ledger.errors import AccountClosed, CurrencyMismatch
from activities.security.freezes import ensure_not_frozen
from api.auth import errors as auth_errors
from api.auth.totp import consume_totp, user_key
from api.deps import ClientDep, CurrentUser, CurrentUserRow, ServicesDep
from api.idempotency import IdempotencyKey, key_digest, request_hash
from api.money import currency_code, minor_units
from api.openapi_problems import problems
from api.ownership import owned_account, owned_payment, owned_payment_method
from api.payments.errors import NotAwaitingApproval, NotRetryable, UnsupportedPaymentMethod
from api.payments.flow import claim_payment, ensure_available, payment_public, update_refusal
from api.payments.recovery import start_or_settle
from api.services import Services
from core.db import transaction
from core.errors import AppError
from models.audit import record_audit
from models.ledger.tables import AccountStatus, LedgerAccount
from models.payments.payloads import ApprovalDecision, PaymentState
from models.payments.schemas import ApproveBody, ExternalPaymentCreate, PaymentPublic
from models.payments.tables import (
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
)
from temporal.ids import external_payment_workflow_id

router = APIRouter(prefix="/api/payments", tags=["payments"])


def _check_payment(
    source: LedgerAccount, method: PaymentMethod, body: ExternalPaymentCreate, amount: int
) -> None:
    if method.kind != PaymentMethodKind.IBAN:
        raise UnsupportedPaymentMethod("payments can only be sent to an IBAN beneficiary")
    if source.status == AccountStatus.CLOSED:
        raise AccountClosed("a closed account cannot send money")
    if body.currency != source.currency:
        raise CurrencyMismatch(
            f"payment currency {body.currency} must match the account's ({source.currency})",
        )
    ensure_available(source, amount)


@router.post(
    "/external",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_200_OK: {"model": PaymentPublic, "description": "a retry: the same payment"},
        **problems(409),
    },
)
async def create_external_payment(
    body: ExternalPaymentCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PaymentPublic:
    """Pay a saved IBAN beneficiary (ExternalPaymentWorkflow); 202 with the status URL."""
    key = key_digest(idempotency_key)
    amount = minor_units(body.amount, currency_code(body.currency))
    body_hash = request_hash(
        {
            "from": body.from_account_id,
            "method": body.payment_method_id,
            "amount": amount,
            "currency": body.currency,
            "description": body.description,
        }
    )

    async def prepare(session: AsyncSession) -> Callable[[uuid.UUID], Payment]:
        """Check the source account and the beneficiary, and build the row."""
        source = await owned_account(session, user.id, body.from_account_id)
        await ensure_not_frozen(session, source.id)
        method = await owned_payment_method(session, user.id, body.payment_method_id)
        _check_payment(source, method, body, amount)
        return lambda payment_id: Payment(
            id=payment_id,
            user_id=user.id,
            kind=PaymentKind.EXTERNAL,
            status=PaymentStatus.PROCESSING,
            from_account_id=source.id,
            payment_method_id=method.id,
            amount=amount,
            currency=body.currency,
            description=body.description,
            idempotency_key=key,
            request_hash=body_hash,
            workflow_id=external_payment_workflow_id(payment_id),
        )

    async def audit(session: Any, payment: Payment) -> None:
        await record_audit(
            session,
            "payment.external_requested",
            actor_user_id=user.id,
            subject=str(payment.id),
            client=client,
            details={"amount": amount, "currency": body.currency},
        )

    # A retry is answered from the row even if the balance or the beneficiary changed since.
    claimed = await claim_payment(
        services, user_id=user.id, key=key, body_hash=body_hash, prepare=prepare, on_first=audit
    )
    return await _answer(
        services, user.id, claimed.payment, created=claimed.created, response=response
    )


async def _answer(
    services: Services, user_id: uuid.UUID, payment: Payment, *, created: bool, response: Response
) -> PaymentPublic:
    if not PaymentStatus(payment.status).is_terminal:
        await start_or_settle(services, payment)  # attach on a retry: heals a lost start too
    if not created:
        response.status_code = status.HTTP_200_OK  # a retry: the same payment as before
    return payment_public(await owned_payment(services, user_id, payment.id))


async def _external_handle(
    services: Services, user_id: uuid.UUID, payment_id: uuid.UUID, refusal: type[AppError]
) -> tuple[Payment, WorkflowHandle[Any, Any], PaymentState]:
    """The caller's running external payment, its workflow handle and live state (or 409)."""
    payment = await owned_payment(services, user_id, payment_id)
    if payment.kind != PaymentKind.EXTERNAL or PaymentStatus(payment.status).is_terminal:
        raise refusal(f"payment is {payment.status}")
    handle = services.temporal.get_workflow_handle(payment.workflow_id)
    try:
        state = await handle.query(
            "status", result_type=PaymentState, reject_condition=QueryRejectCondition.NOT_OPEN
        )
    except WorkflowQueryRejectedError as exc:  # ended unfinished: the reconciler resolves it
        raise refusal("the payment's workflow has stopped; it is being reconciled") from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unreachable: a 503
        raise refusal(f"payment is {payment.status}; its workflow has not started yet") from exc
    return payment, handle, state


@router.post("/{payment_id}/approve", responses=problems(409, 429))
async def approve_payment(
    payment_id: uuid.UUID,
    body: ApproveBody,
    user: CurrentUserRow,
    services: ServicesDep,
    client: ClientDep,
) -> PaymentPublic:
    """Approve a payment held for review with a TOTP code (checked here, never sent on)."""
    payment, handle, state = await _external_handle(
        services, user.id, payment_id, NotAwaitingApproval
    )
    if state.status != PaymentStatus.PENDING_APPROVAL:
        raise NotAwaitingApproval(f"payment is {state.status.value}")
    async with services.reads() as session:  # frozen: not even a code is taken
        await ensure_not_frozen(session, payment.from_account_id)
    account = user_key(user.id)
    await services.throttle.ensure_allowed(account, None)  # a logged-in customer: per account
    async with transaction(services.sessions) as session:
        accepted = await consume_totp(session, services.crypto, user, body.totp_code)
        await record_audit(
            session,
            "payment.approval",
            actor_user_id=user.id,
            subject=str(payment_id),
            client=client,
            details={"accepted": accepted},
        )
    if not accepted:
        await services.throttle.record_failure(account, client)
        raise auth_errors.InvalidMfaCode()
    try:
        await handle.execute_update(
            "approve", ApprovalDecision(approved=True), result_type=PaymentState
        )
    except WorkflowUpdateFailedError as exc:  # the workflow refused: say why
        raise NotAwaitingApproval(update_refusal(exc)) from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unreachable: a 503
        raise NotAwaitingApproval("payment has already finished") from exc
    return payment_public(await owned_payment(services, user.id, payment_id))


@router.post("/{payment_id}/retry", status_code=status.HTTP_202_ACCEPTED, responses=problems(409))
async def retry_payment(
    payment_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> PaymentPublic:
    """Submit again a payment waiting in `requires_action` (sends the `ops_retry` signal)."""
    payment, handle, state = await _external_handle(services, user.id, payment_id, NotRetryable)
    if state.status != PaymentStatus.REQUIRES_ACTION:
        raise NotRetryable(f"payment is {state.status.value}, not requires_action")
    async with services.reads() as session:  # a retry would submit: not from a frozen account
        await ensure_not_frozen(session, payment.from_account_id)
    try:
        await handle.signal("ops_retry")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unreachable: a 503
        raise NotRetryable("payment has already finished") from exc
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "payment.retry_requested",
            actor_user_id=user.id,
            subject=str(payment_id),
            client=client,
        )
    return payment_public(await owned_payment(services, user.id, payment_id))
