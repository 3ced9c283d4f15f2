"""The identity map and the quarantine, on the caller's session."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models.migration.tables import MigrationDomain


async def new_ids(
    session: AsyncSession, domain: MigrationDomain, legacy_ids: Iterable[int]
) -> dict[int, uuid.UUID]:
    """The new ids of those legacy rows of `domain` that are already migrated."""
    ids = sorted(set(legacy_ids))
    if not ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT legacy_id, new_id FROM migration_identities "
            "WHERE domain = :domain AND legacy_id = ANY(:ids)"
        ),
        {"domain": domain.value, "ids": ids},
    )
    return {int(r.legacy_id): r.new_id for r in rows}


async def remember(
    session: AsyncSession, domain: MigrationDomain, legacy_id: int, new_id: uuid.UUID
) -> None:
    """Map a legacy row to its new id, and lift any earlier quarantine of that row."""
    await remember_all(session, domain, {legacy_id: new_id})


async def quarantine(
    session: AsyncSession, domain: MigrationDomain, legacy_id: int, reason: str, detail: str = ""
) -> None:
    """Set a legacy row aside with its reason (the latest reason wins)."""
    await session.execute(
        text(
            "INSERT INTO migration_quarantine (id, domain, legacy_id, reason, detail) "
            "VALUES (:id, :domain, :legacy_id, :reason, :detail) "
            "ON CONFLICT (domain, legacy_id) DO UPDATE "
            "SET reason = EXCLUDED.reason, detail = EXCLUDED.detail"
        ),
        {
            "id": uuid.uuid4(),
            "domain": domain.value,
            "legacy_id": legacy_id,
            "reason": reason[:64],
            "detail": detail[:500],
        },
    )


async def remember_all(
    session: AsyncSession, domain: MigrationDomain, mapped: dict[int, uuid.UUID]
) -> None:
    """Map legacy rows to their new ids and lift any earlier quarantine of them: two
    statements, however many rows."""
    if not mapped:
        return
    legacy_ids = list(mapped)
    await session.execute(
        text(
            "INSERT INTO migration_identities (id, domain, legacy_id, new_id) "
            "SELECT gen_random_uuid(), :domain, legacy_id, new_id "
            "FROM unnest(CAST(:legacy AS bigint[]), CAST(:new AS uuid[])) AS r(legacy_id, new_id)"
        ),
        {"domain": domain.value, "legacy": legacy_ids, "new": [mapped[i] for i in legacy_ids]},
    )
    await session.execute(
        text("DELETE FROM migration_quarantine WHERE domain = :domain AND legacy_id = ANY(:ids)"),
        {"domain": domain.value, "ids": legacy_ids},
    )
