"""Manual entries: a customer's own notes of money spent or received outside the bank (status
`memo`). They move no money; card and cash transactions that did arrive through the signed
processor feed (`api.routes.processor`).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from activities.ledger.errors import AccountClosed, CurrencyMismatch
from activities.memos import Memo, add_memo, delete_memo, same_request
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.idempotency import IdempotencyKey, key_digest
from api.money import entry_money, not_in_future
from api.openapi_problems import problems
from api.ownership import owned_account, owned_transaction
from core import errors
from core.db import transaction
from core.errors import IdempotencyKeyReused
from models.audit import record_audit
from models.ledger.tables import (
    AccountStatus,
    TransactionStatus,
)
from models.transactions.schemas import (
    ManualEntryCreate,
    TransactionPublic,
)

router = APIRouter(prefix="/api/transactions", tags=["transactions"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "replay: this Idempotency-Key already added this entry"},
        **problems(409),
    },
)
async def add_manual_entry(
    body: ManualEntryCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> TransactionPublic:
    """Add a note of money spent or received outside the bank (status `memo`); it moves no
    money: balances, holds and analytics totals stay as they are. Card and cash transactions
    that moved money arrive only through the signed processor feed."""
    digest = key_digest(idempotency_key)
    amount, currency, category = entry_money(body.amount, body.currency, body.category)
    memo = Memo(
        account_id=body.account_id,
        user_id=user.id,
        amount=amount,
        currency=currency,
        direction=body.direction,
        description=body.description,
        merchant=body.merchant,
        counterparty=body.counterparty,
        category=category,
        occurred_at=body.occurred_at,
    )
    not_in_future(body.occurred_at)
    async with transaction(services.sessions) as session:
        account = await owned_account(session, user.id, body.account_id)
        if account.currency != currency:
            raise CurrencyMismatch(
                f"the account holds {account.currency}, not {currency}",
                account_currency=account.currency,
                currency=currency,
            )
        if account.status != AccountStatus.OPEN:
            raise AccountClosed("the account is closed")
        row, created = await add_memo(session, memo, digest)
        if not created and not same_request(row, memo):
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different entry")
        if created:
            await record_audit(
                session,
                "transaction.memo_added",
                actor_user_id=user.id,
                subject=f"transaction:{row.id}",
                client=client,
            )
    if created:
        response.headers["Location"] = f"{router.prefix}/{row.id}"
    else:
        response.status_code = status.HTTP_200_OK
    return TransactionPublic.of(row)


@router.delete("/{transaction_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(409))
async def delete_manual_entry(
    transaction_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> Response:
    """Delete one of the caller's manual entries; a transaction that moved money is 409."""
    async with transaction(services.sessions) as session:
        row = await owned_transaction(session, user.id, transaction_id)
        if row.status != TransactionStatus.MEMO:
            raise errors.InvalidState("only manual entries (status memo) can be deleted")
        await delete_memo(session, row)
        await record_audit(
            session,
            "transaction.memo_deleted",
            actor_user_id=user.id,
            subject=f"transaction:{transaction_id}",
            client=client,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
