"""Cutover and rollback: the gateway's routes of a domain, the legacy write freeze, and the
point of no return (the first write on the new side for that domain)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models.gateway.tables import RouteMode
from models.migration.tables import MigrationDomain

UPDATED_BY = "migration"


async def current_routes(session: AsyncSession, domain: MigrationDomain) -> dict[str, Any]:
    """The domain's route rows as they are (prefix -> mode), `legacy` for a missing row."""
    rows = await session.execute(
        text("SELECT prefix, mode FROM gateway_routes WHERE prefix = ANY(:p)"),
        {"p": list(domain.prefixes)},
    )
    found: dict[str, str] = {r.prefix: r.mode for r in rows}
    return {p: found.get(p, RouteMode.LEGACY.value) for p in domain.prefixes}


async def set_routes(
    session: AsyncSession, domain: MigrationDomain, modes: dict[str, Any], *, frozen: bool
) -> None:
    """Upsert the domain's prefixes with these modes and the legacy-writes flag."""
    for prefix in domain.prefixes:
        await session.execute(
            text(
                "INSERT INTO gateway_routes (prefix, mode, canary_percent, cohort, "
                "legacy_writes_frozen, updated_at, updated_by) VALUES (:prefix, :mode, 0, "
                "'[]'::jsonb, :frozen, now(), :by) ON CONFLICT (prefix) DO UPDATE SET "
                "mode = EXCLUDED.mode, legacy_writes_frozen = EXCLUDED.legacy_writes_frozen, "
                "updated_at = now(), updated_by = EXCLUDED.updated_by"
            ),
            {"prefix": prefix, "mode": modes[prefix], "frozen": frozen, "by": UPDATED_BY},
        )


async def set_frozen_flag(session: AsyncSession, domain: MigrationDomain, frozen: bool) -> None:
    """Mark the domain's routes' legacy writes frozen (or not), keeping their modes."""
    await set_routes(session, domain, await current_routes(session, domain), frozen=frozen)


_NEW_SIDE_WRITES = {
    # a migrated user who logged in (rehash, MFA) or a new sign-up since the cutover
    MigrationDomain.USERS: (
        "SELECT count(*) FROM users u WHERE u.created_at > :since AND NOT EXISTS ("
        "SELECT 1 FROM migration_identities m WHERE m.domain = 'users' AND m.new_id = u.id) "
        "OR (u.updated_at > :since AND u.password_hash NOT LIKE '$2%' AND EXISTS ("
        "SELECT 1 FROM migration_identities m WHERE m.domain = 'users' AND m.new_id = u.id))"
    ),
    # a journal entry since the cutover that the migration did not book
    MigrationDomain.ACCOUNTS: (
        "SELECT count(*) FROM journal_entries WHERE created_at > :since "
        "AND idempotency_key NOT LIKE 'migration:%'"
    ),
    MigrationDomain.TRANSACTIONS: (
        "SELECT count(*) FROM transactions WHERE created_at > :since AND kind <> 'migrated' "
        "AND (journal_entry_id IS NULL OR journal_entry_id NOT IN (SELECT id FROM "
        "journal_entries WHERE idempotency_key LIKE 'migration:%'))"
    ),
}


async def new_side_writes(session: AsyncSession, domain: MigrationDomain, since: datetime) -> int:
    """Writes on the new side of this domain since the cutover (the point of no return)."""
    count = await session.scalar(text(_NEW_SIDE_WRITES[domain]), {"since": since})
    return int(count or 0)
