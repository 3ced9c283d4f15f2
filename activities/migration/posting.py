"""The one place the migration books money: opening balances and catch-up adjustments, each a
balanced two-leg entry between the customer account and the currency's migration-equity
account, idempotent on its key (`migration:account:<legacy id>:opening`, `...:event:<id>`).

It goes through the ledger's batch posting path (`activities.ledger.batch.post_entries`, atomic:
the same invariants, idempotency and outbox events as the single path): a catch-up adjustment
alone, a page's opening balances as one batch (`post_migration_amounts`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class MigrationAmount:
    """One amount to book against migration equity (see `post_migration_amount`)."""

    key: str
    account_id: uuid.UUID
    currency: str
    amount: int
    kind: str
    description: str
    occurred_at: datetime | None = None


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
    amount_in = MigrationAmount(key, account_id, currency, amount, kind, description, occurred_at)
    return (await post_migration_amounts(session, [amount_in]))[0]


async def post_migration_amounts(
    session: AsyncSession, amounts: Sequence[MigrationAmount]
) -> list[uuid.UUID | None]:
    """Book many amounts as one atomic ledger batch (a refusal raises its LedgerError and the
    caller's transaction or savepoint undoes the rest); entry ids in order, None for zeros."""
    equity: dict[str, uuid.UUID] = {}
    entries: list[PostEntryInput] = []
    for item in amounts:
        if item.amount == 0:
            continue
        if item.currency not in equity:
            equity[item.currency] = await migration_equity_account(session, item.currency)
        entries.append(
            PostEntryInput(
                idempotency_key=item.key,
                kind=item.kind,
                description=item.description,
                occurred_at=item.occurred_at,
                legs=[
                    EntryLeg(
                        account_id=item.account_id,
                        amount=item.amount,
                        currency=item.currency,
                        description=item.description,
                        counterparty="Previous banking system",
                        category="transfer",
                    ),
                    EntryLeg(
                        account_id=equity[item.currency],
                        amount=-item.amount,
                        currency=item.currency,
                    ),
                ],
            )
        )
    posted: dict[str, uuid.UUID] = {}
    if entries:
        batch = await post_entries(session, PostEntryBatchInput(atomic=True, entries=entries))
        for entry_in, result in zip(entries, batch.results, strict=True):
            assert result.entry is not None  # atomic: a rejection raised its LedgerError
            posted[entry_in.idempotency_key] = result.entry.entry_id
    return [posted.get(item.key) for item in amounts]
