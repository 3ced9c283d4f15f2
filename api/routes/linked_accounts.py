"""Linked external accounts: start the micro-deposit verification (LinkAccountWorkflow), list and
read links (live from the workflow while it runs), and confirm the two amounts (an update)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.ledger.errors import AccountClosed, InvalidAmount
from activities.link_starts import start_link_workflow
from activities.linking import MAX_DEPOSIT_MINOR, amounts_digest
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.linking.errors import (
    AlreadyLinked,
    InvalidLinkState,
    LinkFailed,
    TooManyLinkAttempts,
    TooManyPendingLinks,
    WrongAmounts,
)
from api.openapi_problems import problems
from api.ownership import owned_account, owned_link
from api.payments.errors import InvalidHolderName, valid_iban
from api.services import Services
from core.db import transaction
from core.errors import AppError
from models.audit import record_audit
from models.base import utcnow
from models.ledger.tables import AccountStatus
from models.linking.payloads import ConfirmLinkInput, LinkState
from models.linking.schemas import (
    ConfirmLinkBody,
    LinkAccepted,
    LinkedAccountCreate,
    LinkedAccountList,
    LinkedAccountPublic,
)
from models.linking.tables import LinkedAccount, LinkStatus
from models.money import AmountError, CurrencyError, format_amount, parse_amount
from temporal.handles import handle_for
from temporal.ids import link_account_workflow_id
from workflows.link_account import LinkAccountWorkflow

router = APIRouter(prefix="/api/accounts", tags=["linked accounts"])
MAX_PENDING_LINKS_PER_USER = 5  # each verification costs the bank two micro-deposits
MAX_LINKS_LISTED = 100
LinkId = Annotated[uuid.UUID, Path()]
_TERMINAL = frozenset({LinkStatus.LINKED, LinkStatus.FAILED, LinkStatus.EXPIRED})


def mask_iban(iban: str) -> str:
    """Country, check digits and the last four characters only."""
    return f"{iban[:4]} **** {iban[-4:]}"


def link_view(link: LinkedAccount, state: LinkState | None = None) -> LinkedAccountPublic:
    """The API view of a link row, with the workflow's live state when given."""
    view = LinkedAccountPublic(
        id=link.id,
        account_id=link.account_id,
        iban_masked=mask_iban(link.iban),
        holder_name=link.holder_name,
        status=link.status,
        created_at=link.created_at,
        updated_at=link.updated_at,
        status_url=_status_url(link),
    )
    if state is not None:
        view = view.model_copy(
            update={
                "status": state.status,
                "attempts_left": state.attempts_left,
                "deposits": state.deposits,
                "expires_at": state.expires_at,
                "failure_reason": state.failure_reason,
                "source": "workflow",
            }
        )
    return view


def _status_url(link: LinkedAccount) -> str:
    return f"/api/accounts/{link.account_id}/links/{link.id}"


@router.post(
    "/{account_id}/link",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_200_OK: {
            "model": LinkAccepted,
            "description": "the same IBAN again: the pending link",
        },
        **problems(409, 429),
    },
)
async def link_external_account(
    account_id: uuid.UUID,
    body: LinkedAccountCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
) -> LinkAccepted:
    """Start verifying an external account; the same IBAN again returns the pending link."""
    iban = valid_iban(body.iban)
    holder_name = " ".join(body.holder_name.split())
    if not holder_name:
        raise InvalidHolderName("holder_name must not be blank")
    async with transaction(services.sessions) as session:
        account = await owned_account(session, user.id, account_id)
        if account.status != AccountStatus.OPEN:
            raise AccountClosed("a closed account cannot be linked")
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"link:{user.id}"}
        )
        existing = (
            await session.execute(
                select(LinkedAccount).where(
                    col(LinkedAccount.account_id) == account_id,
                    col(LinkedAccount.iban) == iban,
                    col(LinkedAccount.status).in_(
                        [LinkStatus.PENDING_CONFIRMATION, LinkStatus.LINKED]
                    ),
                )
            )
        ).scalar_one_or_none()
        if existing is not None and existing.status == LinkStatus.LINKED:
            raise AlreadyLinked(
                "this external account is already linked to the account",
                linked_account_id=str(existing.id),
            )
        if existing is None:
            pending = await session.scalar(
                select(func.count())
                .select_from(LinkedAccount)
                .where(
                    col(LinkedAccount.user_id) == user.id,
                    col(LinkedAccount.status) == LinkStatus.PENDING_CONFIRMATION,
                )
            )
            if (pending or 0) >= MAX_PENDING_LINKS_PER_USER:
                raise TooManyPendingLinks(
                    f"at most {MAX_PENDING_LINKS_PER_USER} links can await confirmation at once",
                )
            await _check_link_budget(session, user.id, services.settings.link_attempts_per_30_days)
            link_id = uuid.uuid4()
            link = LinkedAccount(
                id=link_id,
                user_id=user.id,
                account_id=account_id,
                iban=iban,
                holder_name=holder_name,
                status=LinkStatus.PENDING_CONFIRMATION,
                workflow_id=link_account_workflow_id(link_id),
            )
            session.add(link)
            await record_audit(
                session,
                "linked_account.requested",
                actor_user_id=user.id,
                subject=str(link_id),
                client=client,
            )
        else:
            link = existing
        currency = account.currency
    if existing is not None:
        response.status_code = status.HTTP_200_OK  # a retry: the pending link, not a second one
    # The row stays if the start fails (a 503 while Temporal is down): a retry with the same
    # IBAN answers this link and starts it, and the `reconcile-rows` schedule starts it for a
    # client that gave up (docs: decisions, stranded links and registrations).
    await start_link_workflow(services.temporal, services.settings, link, currency)
    return LinkAccepted(linked_account_id=link.id, status=link.status, status_url=_status_url(link))


async def _check_link_budget(session: AsyncSession, user_id: uuid.UUID, allowed: int) -> None:
    """Refuse a new link past the customer's 30-day budget: each one makes the bank send two
    micro-deposits that it never gets back, so links must not be an unbounded leak."""
    since = utcnow() - timedelta(days=30)
    started = await session.scalar(
        select(func.count())
        .select_from(LinkedAccount)
        .where(col(LinkedAccount.user_id) == user_id, col(LinkedAccount.created_at) >= since)
    )
    if (started or 0) >= allowed:
        raise TooManyLinkAttempts(
            f"at most {allowed} account links can be started in 30 days", retry_after=86400
        )


@router.get("/{account_id}/links")
async def list_links(
    account_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> LinkedAccountList:
    """The account's links, newest first (from PostgreSQL)."""
    async with services.reads() as session:
        await owned_account(session, user.id, account_id)
        rows = (
            await session.execute(
                select(LinkedAccount)
                .where(
                    col(LinkedAccount.account_id) == account_id,
                    col(LinkedAccount.user_id) == user.id,
                )
                .order_by(col(LinkedAccount.created_at).desc(), col(LinkedAccount.id).desc())
                .limit(MAX_LINKS_LISTED)
            )
        ).scalars()
        return LinkedAccountList(items=[link_view(link) for link in rows])


@router.get("/{account_id}/links/{link_id}")
async def get_link(
    account_id: uuid.UUID, link_id: LinkId, user: CurrentUser, services: ServicesDep
) -> LinkedAccountPublic:
    """One link: live from the workflow's `status` query while pending, PostgreSQL after."""
    link = await owned_link(services, user.id, account_id, link_id)
    if LinkStatus(link.status) in _TERMINAL:
        return link_view(link)
    try:
        state = await handle_for(
            services.temporal, LinkAccountWorkflow.run, link.workflow_id
        ).query(LinkAccountWorkflow.status)
    except RPCError:
        return link_view(await owned_link(services, user.id, account_id, link_id))
    return link_view(link, state)


@router.post("/{account_id}/links/{link_id}/confirm", responses=problems(400, 409, 410))
async def confirm_link(
    account_id: uuid.UUID,
    link_id: LinkId,
    body: ConfirmLinkBody,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
) -> LinkedAccountPublic:
    """Confirm the two micro-deposit amounts (any order); wrong answers cost an attempt."""
    async with services.reads() as session:
        account = await owned_account(session, user.id, account_id)
    link = await owned_link(services, user.id, account_id, link_id)
    if LinkStatus(link.status) in _TERMINAL:
        raise InvalidLinkState(f"the link is {link.status}", link_status=link.status)
    minors = [_deposit_amount(a, account.currency) for a in body.amounts]
    digest = amounts_digest(services.crypto, link.id, minors)
    handle = handle_for(services.temporal, LinkAccountWorkflow.run, link.workflow_id)
    try:
        state = await handle.execute_update(
            LinkAccountWorkflow.confirm, ConfirmLinkInput(amounts_digest=digest)
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if not isinstance(cause, ApplicationError):
            raise
        if cause.type in (WrongAmounts.code, LinkFailed.code):
            await _audit_confirm(services, user.id, link.id, client, accepted=False)
        refusal = AppError.from_failure(cause) or InvalidLinkState(cause.message)
        raise refusal from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        link = await owned_link(services, user.id, account_id, link_id)
        raise InvalidLinkState(f"the link is {link.status}", link_status=link.status) from exc
    await _audit_confirm(services, user.id, link.id, client, accepted=True)
    return link_view(await owned_link(services, user.id, account_id, link_id), state)


def _deposit_amount(value: str, currency: str) -> int:
    """A submitted amount in minor units; out of the micro-deposit range is 422 (no attempt)."""
    try:
        minor = parse_amount(value, currency)
    except (AmountError, CurrencyError) as exc:
        raise InvalidAmount(str(exc)) from exc
    if minor > MAX_DEPOSIT_MINOR:
        raise InvalidAmount(
            "each micro-deposit is at most "
            f"{format_amount(MAX_DEPOSIT_MINOR, currency)} {currency}",
        )
    return minor


async def _audit_confirm(
    services: Services, user_id: uuid.UUID, link_id: uuid.UUID, client: str, *, accepted: bool
) -> None:
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "linked_account.confirm",
            actor_user_id=user_id,
            subject=str(link_id),
            client=client,
            details={"accepted": accepted},
        )
