"""Payments: internal transfers (TransferWorkflow), listing, status and cancellation."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.deps import ClientDep, CurrentUser, ServicesDep
from api.ledger_errors import LedgerProblem
from api.payments.idempotency import (
    claim,
    existing_payment,
    key_digest,
    replayed,
    request_hash,
)
from api.routes.accounts import owned_account
from api.services import Services
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.ledger.tables import AccountKind, AccountStatus, LedgerAccount
from models.money import AmountError, CurrencyError, Money, parse_amount
from models.payments.payloads import PaymentState, TransferInput
from models.payments.schemas import PaymentPage, PaymentPublic, PaymentStatusPublic, TransferCreate
from models.payments.tables import Payment, PaymentKind, PaymentStatus
from temporal import search_attributes
from temporal.ids import transfer_workflow_id
from workflows.transfer import TransferWorkflow

router = APIRouter(prefix="/api/payments", tags=["payments"])
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]
MAX_SCHEDULE_AHEAD = timedelta(days=365)
PAGE_MAX = 100


def payment_view(payment: Payment) -> PaymentPublic:
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


def minor_amount(amount: str, currency: str) -> int:
    """Parse a decimal amount string for a currency, as a 422 problem when invalid."""
    try:
        return parse_amount(amount, currency)
    except CurrencyError as exc:
        raise LedgerProblem(422, "unknown-currency", str(exc)) from exc
    except AmountError as exc:
        raise LedgerProblem(422, "invalid-amount", str(exc)) from exc


async def owned_payment(services: Services, user_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
    """The caller's payment, or 404."""
    async with services.reads() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None or payment.user_id != user_id:
        raise errors.NotFound("unknown payment")
    return payment


async def _accounts(
    session: AsyncSession, user_id: uuid.UUID, body: TransferCreate
) -> tuple[LedgerAccount, LedgerAccount]:
    """The caller's source account and the destination (own by id, anyone's by number)."""
    source = await owned_account(session, user_id, body.from_account_id)
    if body.to_account_id is not None:
        return source, await owned_account(session, user_id, body.to_account_id)
    found = (
        await session.execute(
            select(LedgerAccount).where(
                col(LedgerAccount.number) == body.to_account_number,
                col(LedgerAccount.kind) == AccountKind.CUSTOMER,
            )
        )
    ).scalar_one_or_none()
    if found is None:
        raise errors.NotFound("no account with that number")
    return source, found


def _check_transfer(
    source: LedgerAccount, dest: LedgerAccount, body: TransferCreate, amount: int
) -> None:
    if source.id == dest.id:
        raise LedgerProblem(422, "same-account", "source and destination are the same account")
    if AccountStatus.CLOSED in (source.status, dest.status):
        raise LedgerProblem(409, "account-closed", "a closed account cannot send or receive")
    if not body.currency == source.currency == dest.currency:
        raise LedgerProblem(
            422,
            "currency-mismatch",
            f"transfer currency {body.currency} must match both accounts "
            f"({source.currency} -> {dest.currency})",
        )
    if body.execute_at is not None:
        now = utcnow()
        if not now < body.execute_at <= now + MAX_SCHEDULE_AHEAD:
            raise LedgerProblem(
                422, "invalid-execute-at", "execute_at must be in the future, within a year"
            )
    else:
        ensure_available(source, amount)


def ensure_available(source: LedgerAccount, amount: int) -> None:
    """Refuse up front (creating nothing) when the available balance cannot cover `amount`;
    the ledger re-checks under its row locks when the money moves."""
    if source.posted - source.held < amount:
        raise LedgerProblem(
            409,
            "insufficient-funds",
            "the source account's available balance is too low",
            available=Money.of(source.posted - source.held, source.currency).amount,
        )


@router.post("/transfer", status_code=status.HTTP_202_ACCEPTED)
async def create_transfer(
    body: TransferCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> PaymentPublic:
    """Transfer between the caller's accounts or to another customer (TransferWorkflow)."""
    key = key_digest(idempotency_key)
    amount = minor_amount(body.amount, body.currency)
    body_hash = request_hash(body.model_dump(mode="json") | {"amount": amount})
    # A retry is answered from its payment, even if the balance has changed since.
    async with services.reads() as session:
        previous = await existing_payment(session, user.id, key)
        if previous is None:
            source, dest = await _accounts(session, user.id, body)
    if previous is not None:
        payment = replayed(previous, body_hash)
        if not PaymentStatus(payment.status).is_terminal:
            await _start_transfer(services, payment)  # also heals a start that was lost
        response.status_code = status.HTTP_200_OK
        return payment_view(await owned_payment(services, user.id, payment.id))
    _check_transfer(source, dest, body, amount)

    def new_payment(payment_id: uuid.UUID) -> Payment:
        return Payment(
            id=payment_id,
            user_id=user.id,
            kind=PaymentKind.INTERNAL_TRANSFER,
            status=PaymentStatus.SCHEDULED if body.execute_at else PaymentStatus.PROCESSING,
            from_account_id=source.id,
            to_account_id=dest.id,
            amount=amount,
            currency=body.currency,
            description=body.description,
            idempotency_key=key,
            request_hash=body_hash,
            workflow_id=transfer_workflow_id(payment_id),
            execute_at=body.execute_at,
        )

    async def audit(session: Any, payment: Payment) -> None:
        await record_audit(
            session,
            "payment.transfer_requested",
            actor_user_id=user.id,
            subject=str(payment.id),
            client=client,
        )

    payment, created = await claim(
        services.sessions,
        new_payment,
        user_id=user.id,
        key=key,
        body_hash=body_hash,
        on_first=audit,
    )
    outcome: PaymentState | None = None
    if created or not PaymentStatus(payment.status).is_terminal:
        handle = await _start_transfer(services, payment)
        if payment.execute_at is None:  # most finish within moments: answer with the outcome
            outcome = await _wait_briefly(services, handle)
    final = _completed(payment, outcome) or await owned_payment(services, user.id, payment.id)
    if not created:
        response.status_code = status.HTTP_200_OK  # a retry: the same payment as before
    elif PaymentStatus(final.status).is_terminal:
        response.status_code = status.HTTP_201_CREATED
    return payment_view(final)


async def _start_transfer(services: Services, payment: Payment) -> WorkflowHandle[Any, Any]:
    """Start (or attach to) the payment's TransferWorkflow; safe to call on every retry."""
    assert payment.to_account_id is not None
    return await services.temporal.start_workflow(
        TransferWorkflow.run,
        TransferInput(
            payment_id=payment.id,
            user_id=payment.user_id,
            from_account_id=payment.from_account_id,
            to_account_id=payment.to_account_id,
            amount=payment.amount,
            currency=payment.currency,
            description=payment.description,
            execute_at=payment.execute_at,
            activity_timeout_seconds=services.settings.db_activity_timeout_seconds,
        ),
        id=payment.workflow_id,
        task_queue=services.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=payment_search_attributes(payment),
        static_summary="Internal transfer",
    )


def payment_search_attributes(payment: Payment) -> TypedSearchAttributes:
    """Ids, status and amount only: what ops filter payments by in the Temporal UI."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(search_attributes.USER_ID, str(payment.user_id)),
            SearchAttributePair(search_attributes.STATUS, PaymentStatus(payment.status).value),
            SearchAttributePair(search_attributes.AMOUNT, payment.amount),
            SearchAttributePair(search_attributes.CURRENCY, payment.currency),
        ]
    )


async def _wait_briefly(
    services: Services, handle: WorkflowHandle[Any, Any]
) -> PaymentState | None:
    """Wait up to the configured time for a workflow to finish; its outcome is in the DB, and
    also returned when it came in time."""
    with contextlib.suppress(TimeoutError, WorkflowFailureError):
        result = await asyncio.wait_for(
            handle.result(), services.settings.payment_sync_wait_seconds
        )
        return result if isinstance(result, PaymentState) else None  # untyped handle: a dict
    return None


def _completed(payment: Payment, outcome: PaymentState | None) -> Payment | None:
    """The payment as its workflow completed it (the row holds the same values), sparing a
    read; None when the outcome is anything else or its time is unknown."""
    if outcome is None or outcome.status != PaymentStatus.COMPLETED or not outcome.completed_at:
        return None
    payment.status = PaymentStatus.COMPLETED
    payment.updated_at = payment.completed_at = outcome.completed_at
    return payment


@router.get("")
async def list_payments(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PaymentPage:
    """The caller's payments, newest first, with keyset pagination."""
    query = select(Payment).where(col(Payment.user_id) == user.id)
    if cursor is not None:
        created_at, payment_id = _decode_cursor(cursor)
        query = query.where(
            tuple_(col(Payment.created_at), col(Payment.id)) < tuple_(created_at, payment_id)
        )
    query = query.order_by(col(Payment.created_at).desc(), col(Payment.id).desc()).limit(limit + 1)
    async with services.sessions() as session:
        rows = list((await session.execute(query)).scalars())
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1]) if more and page else None
    return PaymentPage(items=[payment_view(p) for p in page], next_cursor=next_cursor)


@router.get("/{payment_id}")
async def get_payment(
    payment_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> PaymentPublic:
    """One of the caller's payments."""
    return payment_view(await owned_payment(services, user.id, payment_id))


@router.get("/{payment_id}/status")
async def payment_status(
    payment_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> PaymentStatusPublic:
    """Live status: the workflow's query while it runs, PostgreSQL once it has finished."""
    payment = await owned_payment(services, user.id, payment_id)
    if not PaymentStatus(payment.status).is_terminal:
        handle = services.temporal.get_workflow_handle(payment.workflow_id)
        try:
            state = await handle.query("status", result_type=PaymentState)
            return PaymentStatusPublic(
                payment_id=payment_id,
                status=state.status,
                failure_reason=state.failure_reason,
                source="workflow",
            )
        except RPCError:
            payment = await owned_payment(services, user.id, payment_id)
    return PaymentStatusPublic(
        payment_id=payment_id,
        status=payment.status,
        failure_reason=payment.failure_reason,
        source="database",
    )


@router.post("/{payment_id}/cancel")
async def cancel_payment(
    payment_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> PaymentPublic:
    """Cancel a payment while it is still cancellable (its workflow's `cancel` update decides)."""
    payment = await owned_payment(services, user.id, payment_id)
    if PaymentStatus(payment.status).is_terminal:
        raise LedgerProblem(409, "not-cancellable", f"payment is already {payment.status}")
    handle = services.temporal.get_workflow_handle(payment.workflow_id)
    try:
        await handle.execute_update("cancel", result_type=PaymentState)
    except WorkflowUpdateFailedError as exc:
        message = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc)
        raise LedgerProblem(409, "not-cancellable", message) from exc
    except RPCError as exc:
        raise LedgerProblem(409, "not-cancellable", "payment has already finished") from exc
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "payment.cancel_requested",
            actor_user_id=user.id,
            subject=str(payment_id),
            client=client,
        )
    await _wait_briefly(services, handle)
    return payment_view(await owned_payment(services, user.id, payment_id))


def _encode_cursor(payment: Payment) -> str:
    raw = f"{payment.created_at.isoformat()}|{payment.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except ValueError as exc:
        raise errors.AppError("malformed cursor") from exc
