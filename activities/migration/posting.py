"""The one place the migration books money: opening balances and catch-up adjustments, each a
balanced two-leg entry between the customer account and the currency's migration-equity
account, idempotent on its key (`migration:account:<legacy id>:opening`, `...:event:<id>`).

It goes through the ledger's batch posting path (`activities.ledger.batch.post_entries`, atomic:
the same invariants, idempotency and outbox events as the single path), one entry per call for
now; collecting a whole page's openings into one batch is the next step, and only here.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger import ensure_system_accounts
from activities.ledger.batch import post_entries
from models.ledger.payloads import (
    EnsureSystemAccountsInput,
    EntryLeg,
    PostEntryBatchInput,
    PostEntryInput,
)
from models.ledger.tables import AccountKind


async def migration_equity_account(session: AsyncSession, currency: str) -> uuid.UUID:
    """The currency's migration-equity system account (created on first use)."""
    conn = await session.connection()
    find = text("SELECT id FROM ledger_accounts WHERE kind = :kind AND currency = :currency")
    params = {"kind": AccountKind.MIGRATION_EQUITY.value, "currency": currency}
    row = (await conn.execute(find, params)).first()
    if row is not None:
        found: uuid.UUID = row.id
        return found
    await ensure_system_accounts(session, EnsureSystemAccountsInput(currency=currency))
    await conn.execute(
        text(
            "INSERT INTO ledger_accounts (id, kind, name, currency, status, posted, held) "
            "VALUES (:id, :kind, :name, :currency, 'open', 0, 0) "
            "ON CONFLICT (kind, currency) WHERE kind <> 'customer' DO NOTHING"
        ),
        {**params, "id": uuid.uuid4(), "name": f"Migration equity {currency}"},
    )
    created: uuid.UUID = (await conn.execute(find, params)).one().id
    return created


async def post_migration_amount(
    session: AsyncSession,
    *,
    key: str,
    account_id: uuid.UUID,
    currency: str,
    amount: int,
    kind: str,
    description: str,
    occurred_at: datetime | None = None,
) -> uuid.UUID | None:
    """Credit (amount > 0) or debit (< 0) a customer account against migration equity; returns
    the entry id (the first one on a retry), None for a zero amount (nothing to book)."""
    if amount == 0:
        return None
    equity = await migration_equity_account(session, currency)
    entry = PostEntryInput(
        idempotency_key=key,
        kind=kind,
        description=description,
        occurred_at=occurred_at,
        legs=[
            EntryLeg(
                account_id=account_id,
                amount=amount,
                currency=currency,
                description=description,
                counterparty="Previous banking system",
                category="transfer",
            ),
            EntryLeg(account_id=equity, amount=-amount, currency=currency),
        ],
    )
    batch = await post_entries(session, PostEntryBatchInput(atomic=True, entries=[entry]))
    posted = batch.results[0].entry
    assert posted is not None  # atomic: a rejection raised its LedgerError
    return posted.entry_id
