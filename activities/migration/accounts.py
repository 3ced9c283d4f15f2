"""Importing a legacy account: a ledger account for the migrated owner, and its balance as an
opening entry against migration equity (idempotent per legacy account)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger import LedgerError, open_account, open_accounts
from activities.migration.posting import (
    MigrationAmount,
    post_migration_amount,
    post_migration_amounts,
)
from activities.migration.records import new_ids, quarantine, remember, remember_all
from models.ledger.payloads import OpenAccountInput
from models.ledger.tables import AccountType
from models.migration.tables import MigrationDomain
from models.money import CurrencyError, get_currency, parse_amount

DOMAIN = MigrationDomain.ACCOUNTS
OPENING = "Opening balance brought over from the previous system"


def opening_key(legacy_id: int) -> str:
    """The opening entry's idempotency key."""
    return f"migration:account:{legacy_id}:opening"


def minor_units(amount: Decimal, currency: str) -> int | None:
    """A legacy NUMERIC amount in minor units of `currency` (None: not representable)."""
    if amount == 0:
        return 0  # parse_amount refuses zero (an amount to move); a balance may be zero
    try:
        return parse_amount(format(amount, "f"), currency, positive=False)
    except (ValueError, CurrencyError):
        return None


def _problem(row: dict[str, Any]) -> tuple[str, int]:
    """Why the row cannot become money (empty when it can), and its balance in minor units."""
    try:
        currency = get_currency(str(row["currency"]).upper()).code
    except CurrencyError:
        return "unknown_currency", 0
    balance = minor_units(row["balance"], currency)
    if balance is None:
        return "balance_not_representable", 0
    if balance < 0:
        return "negative_balance", 0
    return "", balance


async def import_account(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Open the account and book its opening balance; False when it was quarantined."""
    legacy_id = int(row["id"])
    reason, balance = _problem(row)
    owner = (await new_ids(session, MigrationDomain.USERS, [int(row["user_id"])])).get(
        int(row["user_id"])
    )
    if not reason and owner is None:
        reason = "owner_not_migrated"
    if reason:
        await quarantine(session, DOMAIN, legacy_id, reason, f"legacy account {legacy_id}")
        return False
    assert owner is not None
    opened = await open_account(session, _opening(row, owner))
    await post_migration_amount(
        session,
        key=opening_key(legacy_id),
        account_id=opened.account_id,
        currency=opened.currency,
        amount=balance,
        kind="migration_opening",
        description=OPENING,
    )
    await remember(session, DOMAIN, legacy_id, opened.account_id)
    return True


async def import_accounts(session: AsyncSession, rows: list[dict[str, Any]]) -> bool:
    """Import a page of legacy accounts as `import_account` does each, in a handful of
    statements: the accounts opened together, the opening balances posted as one ledger batch.
    False (and nothing done) when the ledger refused one of them: the caller then imports the
    page row by row, which quarantines that row and keeps the others."""
    owners = await new_ids(session, MigrationDomain.USERS, (int(r["user_id"]) for r in rows))
    accepted: list[tuple[dict[str, Any], int, uuid.UUID]] = []
    for row in rows:
        reason, balance = _problem(row)
        owner = owners.get(int(row["user_id"]))
        if not reason and owner is None:
            reason = "owner_not_migrated"
        if reason:
            legacy_id = int(row["id"])
            await quarantine(session, DOMAIN, legacy_id, reason, f"legacy account {legacy_id}")
        else:
            assert owner is not None
            accepted.append((row, balance, owner))
    if not accepted:
        return True
    try:
        async with session.begin_nested():
            opened = await open_accounts(session, [_opening(row, o) for row, _, o in accepted])
            await post_migration_amounts(
                session,
                [
                    MigrationAmount(
                        key=opening_key(int(row["id"])),
                        account_id=account.account_id,
                        currency=account.currency,
                        amount=balance,
                        kind="migration_opening",
                        description=OPENING,
                    )
                    for (row, balance, _), account in zip(accepted, opened, strict=True)
                ],
            )
    except LedgerError:
        return False
    mapped = {
        int(row["id"]): account.account_id
        for (row, _, _), account in zip(accepted, opened, strict=True)
    }
    await remember_all(session, DOMAIN, mapped)
    return True


def _opening(row: dict[str, Any], owner: uuid.UUID) -> OpenAccountInput:
    return OpenAccountInput(
        idempotency_key=f"migration:account:{int(row['id'])}:open",
        owner_user_id=owner,
        currency=str(row["currency"]).upper(),
        type=AccountType.SAVINGS if row["kind"] == "savings" else AccountType.CHECKING,
        name=str(row["name"] or "Account")[:100],
    )


async def follow_balance(
    session: AsyncSession, account_id: uuid.UUID, row: dict[str, Any], event_id: int
) -> bool:
    """Bring a migrated account to the legacy balance of a change event (an adjustment entry
    for the difference); False when the new balance is not valid money."""
    reason, balance = _problem(row)
    if reason:
        await quarantine(session, DOMAIN, int(row["id"]), reason, f"event {event_id}")
        return False
    posted = await session.scalar(
        text("SELECT posted FROM ledger_accounts WHERE id = :id"), {"id": account_id}
    )
    await post_migration_amount(
        session,
        key=f"migration:account:{row['id']}:event:{event_id}",
        account_id=account_id,
        currency=str(row["currency"]).upper(),
        amount=balance - int(posted or 0),
        kind="migration_adjustment",
        description="Balance change in the previous system",
    )
    return True
