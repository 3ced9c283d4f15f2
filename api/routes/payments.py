"""Payments: internal transfers (TransferWorkflow), listing, status and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import DateTime, Uuid, and_, bindparam, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode

from activities.ledger.errors import AccountClosed, CurrencyMismatch
from activities.security.freezes import active_freeze_kinds, refuse_if_frozen
from api import read_views
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.fast_reads import ReadQuery, as_text
from api.idempotency import IdempotencyKey, key_digest, request_hash
from api.money import currency_code, minor_units
from api.openapi_problems import problems
from api.ownership import owned_payment
from api.pagination import CursorParam, decode_cursor, position
from api.payments.errors import InvalidExecuteAt, NotCancellable, SameAccount
from api.payments.flow import claim_payment, ensure_available, payment_public, update_refusal
from api.payments.recovery import cancel_ended, settle_ended, start_or_settle
from api.services import Services
from api.unavailable import temporal_down
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.ledger.tables import AccountKind, AccountStatus, LedgerAccount
from models.payments.payloads import PaymentState
from models.payments.schemas import PaymentPage, PaymentPublic, PaymentStatusPublic, TransferCreate
from models.payments.tables import Payment, PaymentKind, PaymentStatus
from temporal.ids import transfer_workflow_id

router = APIRouter(prefix="/api/payments", tags=["payments"])
MAX_SCHEDULE_AHEAD = timedelta(days=365)
PAGE_MAX = 100


async def _accounts(
    session: AsyncSession, user_id: uuid.UUID, body: TransferCreate
) -> tuple[LedgerAccount, LedgerAccount, list[str] | None]:
    """The caller's source account, the destination (own by id, anyone's by number) and the
    source's active freeze kinds, in one statement: a transfer's request pays for each one."""
    if body.to_account_id is not None:
        destination = col(LedgerAccount.id) == body.to_account_id
    else:
        destination = and_(
            col(LedgerAccount.number) == body.to_account_number,
            col(LedgerAccount.kind) == AccountKind.CUSTOMER,
        )
    rows = (
        await session.execute(
            select(LedgerAccount, active_freeze_kinds(col(LedgerAccount.id))).where(
                or_(col(LedgerAccount.id) == body.from_account_id, destination)
            )
        )
    ).all()
    found = {account.id: (account, freezes) for account, freezes in rows}
    source, source_freezes = found.get(body.from_account_id, (None, None))
    if source is None or source.owner_user_id != user_id:
        raise errors.NotFound("unknown account")
    if body.to_account_id is not None:
        dest = found.get(body.to_account_id, (None, None))[0]
        if dest is None or dest.owner_user_id != user_id:
            raise errors.NotFound("unknown account")
        return source, dest, source_freezes
    by_number = [
        account
        for account, _ in rows
        if account.number == body.to_account_number and account.kind == AccountKind.CUSTOMER
    ]
    if not by_number:
        raise errors.NotFound("no account with that number")
    return source, by_number[0], source_freezes


def _check_transfer(
    source: LedgerAccount, dest: LedgerAccount, body: TransferCreate, amount: int
) -> None:
    if source.id == dest.id:
        raise SameAccount("source and destination are the same account")
    if AccountStatus.CLOSED in (source.status, dest.status):
        raise AccountClosed("a closed account cannot send or receive")
    if not body.currency == source.currency == dest.currency:
        raise CurrencyMismatch(
            f"transfer currency {body.currency} must match both accounts "
            f"({source.currency} -> {dest.currency})",
        )
    if body.execute_at is not None:
        now = utcnow()
        if not now < body.execute_at <= now + MAX_SCHEDULE_AHEAD:
            raise InvalidExecuteAt("execute_at must be in the future, within a year")
    else:
        ensure_available(source, amount)


@router.post(
    "/transfer",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_201_CREATED: {"model": PaymentPublic, "description": "done within the wait"},
        status.HTTP_200_OK: {"model": PaymentPublic, "description": "a retry: the same payment"},
        **problems(409),
    },
)
async def create_transfer(
    body: TransferCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PaymentPublic:
    """Transfer between the caller's accounts or to another customer (TransferWorkflow)."""
    key = key_digest(idempotency_key)
    amount = minor_units(body.amount, currency_code(body.currency))
    body_hash = request_hash(body.model_dump(mode="json") | {"amount": amount})

    async def prepare(session: AsyncSession) -> Callable[[uuid.UUID], Payment]:
        """Check the accounts (one read session with the key lookup) and build the row."""
        source, dest, source_freezes = await _accounts(session, user.id, body)
        refuse_if_frozen(source.id, source_freezes)
        _check_transfer(source, dest, body, amount)
        return lambda payment_id: Payment(
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

    # A retry is answered from its payment, even if the balance has changed since.
    claimed = await claim_payment(
        services, user_id=user.id, key=key, body_hash=body_hash, prepare=prepare, on_first=audit
    )
    payment, created = claimed.payment, claimed.created
    if claimed.replay:
        if not PaymentStatus(payment.status).is_terminal:
            await start_or_settle(services, payment)  # also heals a start that was lost
        response.status_code = status.HTTP_200_OK
        return payment_public(await owned_payment(services, user.id, payment.id))
    outcome: PaymentState | None = None
    if created or not PaymentStatus(payment.status).is_terminal:
        handle = await start_or_settle(services, payment)
        if handle is not None and payment.execute_at is None:  # most finish within moments
            outcome = await _wait_briefly(services, handle)
    final = _completed(payment, outcome) or await owned_payment(services, user.id, payment.id)
    if not created:
        response.status_code = status.HTTP_200_OK  # a retry: the same payment as before
    elif PaymentStatus(final.status).is_terminal:
        response.status_code = status.HTTP_201_CREATED
    return payment_public(final)


async def _wait_briefly(
    services: Services, handle: WorkflowHandle[Any, Any]
) -> PaymentState | None:
    """Wait up to the configured time for a workflow to finish; its outcome is in the DB, and
    also returned when it came in time."""
    # Temporal going away while we wait is no error: the payment goes on, its row will say.
    with contextlib.suppress(TimeoutError, WorkflowFailureError, RPCError):
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


_NEWEST_FIRST = (col(Payment.created_at).desc(), col(Payment.id).desc())
# The columns of `read_views.payment`, ids as text.
_VIEW = (
    as_text(col(Payment.id)),
    col(Payment.kind),
    col(Payment.status),
    col(Payment.amount),
    col(Payment.currency),
    as_text(col(Payment.from_account_id)),
    as_text(col(Payment.to_account_id)),
    as_text(col(Payment.payment_method_id)),
    col(Payment.description),
    col(Payment.execute_at),
    col(Payment.failure_reason),
    col(Payment.created_at),
    col(Payment.updated_at),
    col(Payment.completed_at),
)
FIRST_PAGE = ReadQuery(
    select(*_VIEW)
    .where(col(Payment.user_id) == bindparam("user_id"))
    .order_by(*_NEWEST_FIRST)
    .limit(bindparam("limit"))
)
NEXT_PAGE = ReadQuery(
    select(*_VIEW)
    .where(
        col(Payment.user_id) == bindparam("user_id"),
        tuple_(col(Payment.created_at), col(Payment.id))
        < tuple_(bindparam("at", type_=DateTime(timezone=True)), bindparam("after", type_=Uuid)),
    )
    .order_by(*_NEWEST_FIRST)
    .limit(bindparam("limit"))
)


@router.get("", response_model=PaymentPage)
async def list_payments(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    cursor: CursorParam = None,
) -> Response:
    """The caller's payments, newest first, with keyset pagination."""
    if cursor is None:
        records = await FIRST_PAGE.fetch(services.read_pool, user_id=user.id, limit=limit + 1)
    else:
        created_at, payment_id = position(*decode_cursor(cursor, "p", 2))
        records = await NEXT_PAGE.fetch(
            services.read_pool, user_id=user.id, at=created_at, after=payment_id, limit=limit + 1
        )
    return read_views.json_response(read_views.payment_page(records, limit))


@router.get("/{payment_id}")
async def get_payment(
    payment_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> PaymentPublic:
    """One of the caller's payments."""
    return payment_public(await owned_payment(services, user.id, payment_id))


@router.get("/{payment_id}/status")
async def payment_status(
    payment_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> PaymentStatusPublic:
    """Live status: the workflow's query while it runs, PostgreSQL once it has finished."""
    payment = await owned_payment(services, user.id, payment_id)
    if not PaymentStatus(payment.status).is_terminal:
        handle = services.temporal.get_workflow_handle(payment.workflow_id)
        try:  # a closed workflow refuses: its last state may be stale (e.g. terminated)
            state = await handle.query(
                "status", result_type=PaymentState, reject_condition=QueryRejectCondition.NOT_OPEN
            )
            return PaymentStatusPublic(
                payment_id=payment_id,
                status=state.status,
                failure_reason=state.failure_reason,
                source="workflow",
            )
        except WorkflowQueryRejectedError:  # it has ended: make sure the row says how
            payment = await settle_ended(services, payment)
        except RPCError as exc:  # not started yet (the reconciler will), or Temporal is down
            if exc.status != RPCStatusCode.NOT_FOUND and not temporal_down(exc):
                raise
            payment = await owned_payment(services, user.id, payment_id)
    return PaymentStatusPublic(
        payment_id=payment_id,
        status=payment.status,
        failure_reason=payment.failure_reason,
        source="database",
    )


@router.post("/{payment_id}/cancel", responses=problems(409))
async def cancel_payment(
    payment_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> PaymentPublic:
    """Cancel a payment while it is still cancellable (its workflow's `cancel` update decides)."""
    payment = await owned_payment(services, user.id, payment_id)
    if PaymentStatus(payment.status).is_terminal:
        raise NotCancellable(f"payment is already {payment.status}")
    handle = services.temporal.get_workflow_handle(payment.workflow_id)
    try:
        await handle.execute_update("cancel", result_type=PaymentState)
    except WorkflowUpdateFailedError as exc:  # the workflow refused: say why
        raise NotCancellable(update_refusal(exc)) from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unreachable: a 503
        # The workflow has ended (or never started): settle from the row.
        cancelled = await cancel_ended(services, payment)
        await _audit_cancel(services, user.id, payment_id, client)
        return payment_public(cancelled)
    await _audit_cancel(services, user.id, payment_id, client)
    await _wait_briefly(services, handle)
    return payment_public(await owned_payment(services, user.id, payment_id))


async def _audit_cancel(
    services: Services, user_id: uuid.UUID, payment_id: uuid.UUID, client: str
) -> None:
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "payment.cancel_requested",
            actor_user_id=user_id,
            subject=str(payment_id),
            client=client,
        )
