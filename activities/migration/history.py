"""Importing legacy transactions as history: `transactions` rows with status `memo` and kind
`migrated`, pointing at no journal entry (a CHECK says so), so they never move money again;
the money is in the opening entry and the catch-up adjustments (see docs/migration.md)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.categorize import categorize
from activities.migration.accounts import minor_units
from activities.migration.records import quarantine, remember
from models.base import utcnow
from models.migration.tables import MigrationDomain

DOMAIN = MigrationDomain.TRANSACTIONS
KIND = "migrated"


def external_id(legacy_id: int) -> str:
    """The imported row's `external_id` (unique per account)."""
    return f"legacy:{legacy_id}"


async def _account(session: AsyncSession, legacy_account_id: int) -> Any:
    return (
        await session.execute(
            text(
                "SELECT a.id, a.owner_user_id, a.currency FROM migration_identities m "
                "JOIN ledger_accounts a ON a.id = m.new_id "
                "WHERE m.domain = 'accounts' AND m.legacy_id = :legacy_id"
            ),
            {"legacy_id": legacy_account_id},
        )
    ).first()


async def _reason(session: AsyncSession, row: dict[str, Any], account: Any) -> str:
    if account is None:
        quarantined = await session.scalar(
            text(
                "SELECT reason FROM migration_quarantine "
                "WHERE domain = 'accounts' AND legacy_id = :id"
            ),
            {"id": int(row["account_id"])},
        )
        return "account_quarantined" if quarantined else "orphan_transaction"
    amount = minor_units(row["amount"], account.currency)
    if amount is None:
        return "amount_not_representable"
    if amount == 0:
        return "zero_amount"
    return ""


async def import_transaction(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Add the legacy transaction to its migrated account's history; False if quarantined."""
    legacy_id = int(row["id"])
    account = await _account(session, int(row["account_id"]))
    reason = await _reason(session, row, account)
    if reason:
        await quarantine(session, DOMAIN, legacy_id, reason, f"legacy transaction {legacy_id}")
        return False
    amount = minor_units(row["amount"], account.currency)
    assert amount is not None
    direction = "credit" if amount > 0 else "debit"
    description = str(row["description"] or "")[:500]
    counterparty = row["counterparty"]
    new_id = uuid.uuid4()
    inserted = await session.scalar(
        text(
            "INSERT INTO transactions (id, account_id, user_id, journal_entry_id, hold_id, kind, "
            "amount, currency, direction, status, counterparty, description, merchant, "
            "category, external_id, occurred_at, created_at, updated_at) VALUES (:id, "
            ":account_id, :user_id, NULL, NULL, :kind, :amount, :currency, :direction, 'memo', "
            ":counterparty, :description, NULL, :category, :external_id, :occurred_at, now(), "
            "now()) ON CONFLICT (account_id, external_id) WHERE external_id IS NOT NULL "
            "DO NOTHING RETURNING id"
        ),
        {
            "id": new_id,
            "account_id": account.id,
            "user_id": account.owner_user_id,
            "kind": KIND,
            "amount": abs(amount),
            "currency": account.currency,
            "direction": direction,
            "counterparty": counterparty[:200] if counterparty else None,
            "description": description,
            "category": categorize(counterparty, description, direction=direction),
            "external_id": external_id(legacy_id),
            "occurred_at": row["created_at"],
        },
    )
    if inserted is None:  # imported before without its identity row (cannot happen, but safe)
        inserted = await session.scalar(
            text("SELECT id FROM transactions WHERE account_id = :a AND external_id = :e"),
            {"a": account.id, "e": external_id(legacy_id)},
        )
    await remember(session, DOMAIN, legacy_id, inserted)
    return True


async def import_transactions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """A backfill batch of history at once: the accounts looked up in one query, the rows
    inserted in one statement, the identity map in another (bad rows quarantined one by one)."""
    if not rows:
        return
    found = await session.execute(
        text(
            "SELECT m.legacy_id, a.id, a.owner_user_id, a.currency FROM migration_identities m "
            "JOIN ledger_accounts a ON a.id = m.new_id "
            "WHERE m.domain = 'accounts' AND m.legacy_id = ANY(:ids)"
        ),
        {"ids": sorted({int(r["account_id"]) for r in rows})},
    )
    accounts = {int(r.legacy_id): r for r in found}
    values: list[dict[str, Any]] = []
    for row in rows:
        account = accounts.get(int(row["account_id"]))
        reason = await _reason(session, row, account)
        if reason:
            await quarantine(
                session, DOMAIN, int(row["id"]), reason, f"legacy transaction {row['id']}"
            )
            continue
        values.append(_values(row, account))
    if not values:
        return
    await session.execute(
        text(
            "INSERT INTO transactions (id, account_id, user_id, journal_entry_id, hold_id, kind, "
            "amount, currency, direction, status, counterparty, description, merchant, "
            "category, external_id, occurred_at, created_at, updated_at) SELECT * FROM "
            "unnest(CAST(:id AS uuid[]), CAST(:account_id AS uuid[]), CAST(:user_id AS uuid[]), "
            "CAST(:none AS uuid[]), CAST(:none AS uuid[]), CAST(:kind AS text[]), "
            "CAST(:amount AS bigint[]), CAST(:currency AS text[]), CAST(:direction AS text[]), "
            "CAST(:status AS text[]), CAST(:counterparty AS text[]), "
            "CAST(:description AS text[]), CAST(:merchant AS text[]), CAST(:category AS text[]), "
            "CAST(:external_id AS text[]), CAST(:occurred_at AS timestamptz[]), "
            "CAST(:now AS timestamptz[]), CAST(:now AS timestamptz[])) "
            "ON CONFLICT (account_id, external_id) WHERE external_id IS NOT NULL DO NOTHING"
        ),
        {
            **{key: [v[key] for v in values] for key in values[0]},
            "none": [None] * len(values),
            "kind": [KIND] * len(values),
            "status": ["memo"] * len(values),
            "merchant": [None] * len(values),
            "now": [utcnow()] * len(values),
        },
    )
    await session.execute(
        text(
            "INSERT INTO migration_identities (id, domain, legacy_id, new_id) "
            "SELECT gen_random_uuid(), 'transactions', CAST(substr(t.external_id, 8) AS bigint), "
            "t.id FROM transactions t WHERE t.account_id = ANY(CAST(:accounts AS uuid[])) "
            "AND t.external_id = ANY(CAST(:external_ids AS text[]))"
        ),
        {
            "accounts": sorted({v["account_id"] for v in values}),
            "external_ids": [v["external_id"] for v in values],
        },
    )
    await session.execute(
        text(
            "DELETE FROM migration_quarantine WHERE domain = 'transactions' "
            "AND legacy_id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": [int(v["external_id"][7:]) for v in values]},
    )


def _values(row: dict[str, Any], account: Any) -> dict[str, Any]:
    amount = minor_units(row["amount"], account.currency)
    assert amount is not None
    direction = "credit" if amount > 0 else "debit"
    description = str(row["description"] or "")[:500]
    counterparty = row["counterparty"][:200] if row["counterparty"] else None
    return {
        "id": uuid.uuid4(),
        "account_id": account.id,
        "user_id": account.owner_user_id,
        "amount": abs(amount),
        "currency": account.currency,
        "direction": direction,
        "counterparty": counterparty,
        "description": description,
        "category": categorize(counterparty, description, direction=direction),
        "external_id": external_id(int(row["id"])),
        "occurred_at": row["created_at"],
    }
