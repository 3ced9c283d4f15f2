"""Customer accounts: list, open, read, rename, close (a workflow) and balance."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import bindparam, func, select
from sqlmodel import col
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from activities.ledger import open_account
from api import read_views
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.fast_reads import ReadQuery, as_text
from api.idempotency import IdempotencyKey, key_digest
from api.openapi_problems import problems
from api.ownership import owned_account
from core import errors
from core.db import transaction
from models.accounts.payloads import AccountClosureInput
from models.accounts.schemas import (
    AccountClosed,
    AccountCreate,
    AccountList,
    AccountPublic,
    AccountUpdate,
    Balance,
)
from models.audit import record_audit
from models.base import utcnow
from models.ledger.payloads import OpenAccountInput
from models.ledger.tables import AccountKind, AccountStatus, LedgerAccount
from models.money import Money
from temporal import search_attributes
from temporal.ids import account_closure_workflow_id
from workflows.account_closure import AccountClosureWorkflow

router = APIRouter(prefix="/api/accounts", tags=["accounts"])
MAX_OPEN_ACCOUNTS = 20


def balance_of(account: LedgerAccount) -> Balance:
    """The balance view of an account row."""
    return Balance(
        account_id=account.id,
        currency=account.currency,
        posted=Money.of(account.posted, account.currency),
        held=Money.of(account.held, account.currency),
        available=Money.of(account.posted - account.held, account.currency),
        as_of=account.updated_at,
    )


def view_of(account: LedgerAccount) -> AccountPublic:
    """The API view of an account row."""
    assert account.number is not None
    assert account.type is not None
    return AccountPublic(
        id=account.id,
        number=account.number,
        name=account.name,
        type=account.type,
        currency=account.currency,
        status=account.status,
        balance=balance_of(account),
        opened_at=account.opened_at,
        closed_at=account.closed_at,
    )


_CUSTOMER_ACCOUNTS = (
    select(  # the columns of `read_views.account`, ids as text
        as_text(col(LedgerAccount.id)),
        col(LedgerAccount.number),
        col(LedgerAccount.name),
        col(LedgerAccount.type),
        col(LedgerAccount.currency),
        col(LedgerAccount.status),
        col(LedgerAccount.posted),
        col(LedgerAccount.held),
        col(LedgerAccount.updated_at),
        col(LedgerAccount.opened_at),
        col(LedgerAccount.closed_at),
    )
    .where(
        col(LedgerAccount.owner_user_id) == bindparam("owner"),
        col(LedgerAccount.kind) == AccountKind.CUSTOMER,
    )
    .order_by(col(LedgerAccount.opened_at))
)
LIST_ALL = ReadQuery(_CUSTOMER_ACCOUNTS)
LIST_OPEN = ReadQuery(_CUSTOMER_ACCOUNTS.where(col(LedgerAccount.status) == AccountStatus.OPEN))


@router.get("", response_model=AccountList)
async def list_accounts(
    user: CurrentUser,
    services: ServicesDep,
    include_closed: Annotated[bool, Query()] = False,
) -> Response:
    """The caller's accounts with balances (open ones unless `include_closed`)."""
    query = LIST_ALL if include_closed else LIST_OPEN
    rows = await query.fetch(services.read_pool, owner=user.id)
    return read_views.json_response({"items": [read_views.account(r) for r in rows]})


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(409))
async def open_new_account(
    body: AccountCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    idempotency_key: IdempotencyKey = None,
) -> AccountPublic:
    """Open an account; with an Idempotency-Key a retried request returns the same account."""
    # The header's one policy (length, printable); the same digest prefix as before.
    digest = key_digest(idempotency_key)[:32] if idempotency_key is not None else uuid.uuid4()
    key = f"open:{user.id}:{digest}"
    async with transaction(services.sessions) as session:
        open_count = await session.scalar(
            select(func.count())
            .select_from(LedgerAccount)
            .where(
                col(LedgerAccount.owner_user_id) == user.id,
                col(LedgerAccount.status) == AccountStatus.OPEN,
            )
        )
        if (open_count or 0) >= MAX_OPEN_ACCOUNTS:
            raise errors.Conflict(f"at most {MAX_OPEN_ACCOUNTS} open accounts per customer")
        opened = await open_account(
            session,
            OpenAccountInput(
                idempotency_key=key,
                owner_user_id=user.id,
                currency=body.currency,
                type=body.type,
                name=body.name,
            ),
        )
        await record_audit(
            session,
            "account.opened",
            actor_user_id=user.id,
            subject=str(opened.account_id),
            client=client,
        )
        account = await owned_account(session, user.id, opened.account_id)
    return view_of(account)


@router.get("/{account_id}")
async def get_account(
    account_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> AccountPublic:
    """One of the caller's accounts."""
    async with services.reads() as session:
        return view_of(await owned_account(session, user.id, account_id))


@router.put("/{account_id}", responses=problems(409))
async def rename_account(
    account_id: uuid.UUID,
    body: AccountUpdate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
) -> AccountPublic:
    """Rename an account (balance, owner, status and currency are not writable)."""
    async with transaction(services.sessions) as session:
        account = await owned_account(session, user.id, account_id, lock=True)
        if account.status != AccountStatus.OPEN:
            raise errors.InvalidState("a closed account cannot be renamed")
        account.name, account.updated_at = body.name, utcnow()
        await record_audit(
            session,
            "account.renamed",
            actor_user_id=user.id,
            subject=str(account_id),
            client=client,
        )
    return view_of(account)


@router.get("/{account_id}/balance")
async def get_balance(account_id: uuid.UUID, user: CurrentUser, services: ServicesDep) -> Balance:
    """Posted, held and available balance of one account."""
    async with services.reads() as session:
        return balance_of(await owned_account(session, user.id, account_id))


@router.delete("/{account_id}", responses=problems(409))
async def close_account(
    account_id: uuid.UUID,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    sweep_to_account_id: Annotated[uuid.UUID | None, Query()] = None,
) -> AccountClosed:
    """Close via AccountClosureWorkflow; a non-zero balance needs `sweep_to_account_id`."""
    async with services.reads() as session:
        account = await owned_account(session, user.id, account_id)
        if sweep_to_account_id is not None:
            await owned_account(session, user.id, sweep_to_account_id)
    workflow_id = account_closure_workflow_id(account_id)
    if account.status == AccountStatus.CLOSED:
        raise errors.InvalidState("account is already closed")
    # A refusal (balance without a sweep target, ...) propagates as its problem.
    result = await services.temporal.execute_workflow(
        AccountClosureWorkflow.run,
        AccountClosureInput(
            account_id=account_id,
            owner_user_id=user.id,
            sweep_to_account_id=sweep_to_account_id,
            activity_timeout_seconds=services.settings.db_activity_timeout_seconds,
        ),
        id=workflow_id,
        task_queue=services.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(search_attributes.USER_ID, str(user.id))]
        ),
        static_summary="Close a customer account (sweep the balance first if asked)",
    )
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "account.closed",
            actor_user_id=user.id,
            subject=str(account_id),
            client=client,
            details={"swept_minor": result.swept_amount},
        )
    return AccountClosed(
        account_id=account_id,
        status=AccountStatus.CLOSED,
        closed_at=result.closed_at,
        swept=Money.of(result.swept_amount, account.currency) if result.swept_amount else None,
        sweep_to_account_id=result.sweep_to_account_id,
        workflow_id=workflow_id,
    )
