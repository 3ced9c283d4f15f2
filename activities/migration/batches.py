"""Backfill batches and change-data-capture batches: each one transaction on our side. A
backfill page is imported set-based; change events, and an accounts page the ledger refused part
of, go row by row, each row in its own savepoint (a row the ledger refuses is quarantined, the
batch goes on)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger import LedgerError
from activities.migration import accounts, history, users
from activities.migration.legacy import LegacyDatabase
from activities.migration.records import new_ids, quarantine
from core.db import SessionFactory, transaction
from models.migration.payloads import BatchInput, BatchResult, ChangesInput, ChangesResult
from models.migration.tables import MigrationDomain

Importer = Callable[[AsyncSession, dict[str, Any]], Awaitable[bool]]
IMPORTERS: dict[MigrationDomain, Importer] = {
    MigrationDomain.USERS: users.import_user,
    MigrationDomain.ACCOUNTS: accounts.import_account,
    MigrationDomain.TRANSACTIONS: history.import_transaction,
}


async def _guarded(
    session: AsyncSession, domain: MigrationDomain, legacy_id: int, step: Awaitable[bool]
) -> bool:
    """Run one row's import in a savepoint; a ledger refusal quarantines the row instead."""
    try:
        async with session.begin_nested():
            return await step
    except LedgerError as exc:
        await quarantine(session, domain, legacy_id, f"ledger_{exc.type}", str(exc))
        return False


async def totals(session: AsyncSession, domain: MigrationDomain) -> tuple[int, int, int]:
    """Migrated rows, quarantined rows and applied events of a domain (exact, retry-proof)."""
    row = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM migration_identities WHERE domain = :d) AS m, "
                "(SELECT count(*) FROM migration_quarantine WHERE domain = :d) AS q, "
                "(SELECT count(*) FROM migration_applied_events WHERE domain = :d) AS e"
            ),
            {"d": domain.value},
        )
    ).one()
    return int(row.m), int(row.q), int(row.e)


async def _record_progress(
    session: AsyncSession, domain: MigrationDomain, **cursors: int
) -> tuple[int, int, int]:
    migrated, quarantined, applied = await totals(session, domain)
    sets = ", ".join(f"{name} = :{name}" for name in cursors)
    await session.execute(
        text(
            "UPDATE migration_runs SET backfilled = :m, quarantined = :q, "  # noqa: S608
            f"applied_events = :e, {sets}, updated_at = now() WHERE domain = :domain"
        ),
        {"m": migrated, "q": quarantined, "e": applied, "domain": domain.value, **cursors},
    )
    return migrated, quarantined, applied


async def backfill_batch(
    sessions: SessionFactory, legacy: LegacyDatabase, inp: BatchInput
) -> BatchResult:
    """Import the next keyset page of legacy rows; rows already mapped are skipped."""
    rows = await legacy.rows_after(inp.domain, inp.after_id, inp.limit)
    importer = IMPORTERS[inp.domain]
    async with transaction(sessions) as session:
        done = await new_ids(session, inp.domain, (int(r["id"]) for r in rows))
        todo = [r for r in rows if int(r["id"]) not in done]
        # The whole page in a few statements; a page the ledger refuses part of goes row by
        # row instead, so that the refused row is quarantined and the others imported.
        if inp.domain == MigrationDomain.TRANSACTIONS:
            await history.import_transactions(session, todo)  # history moves no money
        elif inp.domain == MigrationDomain.USERS:
            await users.import_users(session, todo)
        elif not await accounts.import_accounts(session, todo):
            for row in todo:
                await _guarded(session, inp.domain, int(row["id"]), importer(session, row))
        last_id = int(rows[-1]["id"]) if rows else inp.after_id
        migrated, quarantined, _ = await _record_progress(
            session, inp.domain, backfill_cursor=last_id
        )
    return BatchResult(
        last_id=last_id,
        read=len(rows),
        done=len(rows) < inp.limit,
        migrated_total=migrated,
        quarantined_total=quarantined,
    )


def _row(raw: str | None) -> dict[str, Any] | None:
    """A legacy row from its event's JSON (decimals kept exact, timestamps parsed)."""
    if raw is None:
        return None
    row: dict[str, Any] = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
    for key in ("id", "user_id", "account_id"):
        if key in row:
            row[key] = int(row[key])
    for key in ("created_at", "updated_at"):
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row


async def _apply(session: AsyncSession, domain: MigrationDomain, event: dict[str, Any]) -> str:
    row = _row(event["data"])
    if row is None:
        return "ignored"  # the monolith never deletes; a manual delete is left to ops
    legacy_id = int(row["id"])
    mapped = (await new_ids(session, domain, [legacy_id])).get(legacy_id)
    if mapped is None:
        imported = await _guarded(session, domain, legacy_id, IMPORTERS[domain](session, row))
        return "imported" if imported else "quarantined"
    if domain == MigrationDomain.USERS:
        step = users.update_user(session, mapped, row)
    elif domain == MigrationDomain.ACCOUNTS:
        step = accounts.follow_balance(session, mapped, row, int(event["id"]))
    else:
        return "ignored"  # legacy transactions are immutable: an update is not history
    return "updated" if await _guarded(session, domain, legacy_id, step) else "quarantined"


async def apply_changes(
    sessions: SessionFactory, legacy: LegacyDatabase, inp: ChangesInput
) -> ChangesResult:
    """Apply the next change events in order; an event applied before is skipped."""
    events = await legacy.events_after(inp.domain, inp.after_event, inp.limit)
    async with transaction(sessions) as session:
        ids = [int(e["id"]) for e in events]
        seen = set(
            (
                await session.execute(
                    text(
                        "SELECT event_id FROM migration_applied_events "
                        "WHERE domain = :d AND event_id = ANY(:ids)"
                    ),
                    {"d": inp.domain.value, "ids": ids},
                )
            ).scalars()
        )
        for event in events:
            if int(event["id"]) in seen:
                continue
            outcome = await _apply(session, inp.domain, event)
            await session.execute(
                text(
                    "INSERT INTO migration_applied_events (domain, event_id, outcome) "
                    "VALUES (:d, :id, :outcome)"
                ),
                {"d": inp.domain.value, "id": int(event["id"]), "outcome": outcome},
            )
        last = ids[-1] if ids else inp.after_event
        migrated, quarantined, applied = await _record_progress(
            session, inp.domain, cdc_cursor=last
        )
    return ChangesResult(
        last_event=last,
        seen=len(events),
        more=len(events) >= inp.limit,
        applied_total=applied,
        migrated_total=migrated,
        quarantined_total=quarantined,
    )
