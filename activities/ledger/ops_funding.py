"""Ops funding of a customer account by its number (idempotent per reference). Behind
`vortex ledger fund` and `POST /api/staff/ops/fund`."""

from __future__ import annotations

import getpass

from sqlalchemy import select
from sqlmodel import col

from activities.ledger.entries import fund_account
from activities.ledger.errors import UNKNOWN_ACCOUNT, LedgerError
from core.db import SessionFactory, transaction
from models.ledger.payloads import EntryResult, FundAccountInput
from models.ledger.tables import AccountKind, LedgerAccount
from models.money import parse_amount


async def fund_by_number(
    sessions: SessionFactory,
    number: str,
    amount: str,
    reference: str,
    reason: str,
    client: str | None = None,
) -> EntryResult:
    """Ops funding of the account with this number; re-running with the same reference is a
    no-op that returns the first entry (the reference is the idempotency key). Also behind
    `POST /api/staff/ops/fund`, with the staff member as `client`."""
    async with transaction(sessions) as session:
        account = (
            await session.execute(
                select(LedgerAccount).where(
                    col(LedgerAccount.number) == number,
                    col(LedgerAccount.kind) == AccountKind.CUSTOMER,
                )
            )
        ).scalar_one_or_none()
        if account is None:
            raise LedgerError(UNKNOWN_ACCOUNT, f"no customer account with number {number}")
        return await fund_account(
            session,
            FundAccountInput(
                idempotency_key=f"ops-funding:{reference}",
                account_id=account.id,
                amount=parse_amount(amount, account.currency),
                currency=account.currency,
                reason=reason,
                client=client or f"cli:{getpass.getuser()}",
            ),
        )
