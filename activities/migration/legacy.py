"""Reads (and the freeze flag) on the monolith's database.

This is the migration's client of the legacy system: the monolith's tables are the source, the
`migration_events` table its change feed, `frozen_domains` the flag its write routes obey.
A connection per call: a batch makes one or two calls, and no pool outlives its worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from models.migration.tables import MigrationDomain

FREEZE_LOCK_KEY = 7_311_503  # the monolith's writers hold it shared (see legacysim.schema)
TABLES = {
    MigrationDomain.USERS: "users",
    MigrationDomain.ACCOUNTS: "accounts",
    MigrationDomain.TRANSACTIONS: "transactions",
}


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class LegacyDatabase:
    """The monolith's database, by URL."""

    def __init__(self, url: str) -> None:
        self._url = url

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one call, closed after it."""
        conn = await asyncpg.connect(_dsn(self._url))
        try:
            yield conn
        finally:
            await conn.close()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run a read query on the monolith's database."""
        async with self.connection() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def rows_after(
        self, domain: MigrationDomain, after_id: int, limit: int
    ) -> list[dict[str, Any]]:
        """Keyset page of a domain's legacy rows: id > after_id, ascending."""
        sql = f"SELECT * FROM {TABLES[domain]} WHERE id > $1 ORDER BY id LIMIT $2"  # noqa: S608
        return [dict(r) for r in await self.fetch(sql, after_id, limit)]

    async def rows_by_id(self, domain: MigrationDomain, ids: list[int]) -> list[dict[str, Any]]:
        """Those legacy rows of a domain (for sampled diffs)."""
        sql = f"SELECT * FROM {TABLES[domain]} WHERE id = ANY($1::bigint[]) ORDER BY id"  # noqa: S608
        return [dict(r) for r in await self.fetch(sql, ids)]

    async def events_after(
        self, domain: MigrationDomain, after_event: int, limit: int
    ) -> list[dict[str, Any]]:
        """Change events of a domain's table with id > after_event, in commit order."""
        rows = await self.fetch(
            "SELECT id, op, row_id, data::text AS data FROM migration_events "
            "WHERE id > $1 AND table_name = $2 ORDER BY id LIMIT $3",
            after_event,
            TABLES[domain],
            limit,
        )
        return [dict(r) for r in rows]

    async def last_event_id(self) -> int:
        """The newest change event's id (0 when none)."""
        rows = await self.fetch("SELECT coalesce(max(id), 0) AS n FROM migration_events")
        return int(rows[0]["n"])

    async def count(self, domain: MigrationDomain) -> int:
        """How many rows a domain's legacy table holds."""
        rows = await self.fetch(f"SELECT count(*) AS n FROM {TABLES[domain]}")  # noqa: S608
        return int(rows[0]["n"])

    async def set_frozen(self, domain: MigrationDomain, frozen: bool) -> None:
        """Refuse (or allow again) the monolith's writes of a domain."""
        async with self.connection() as conn, conn.transaction():
            # Exclusive against the writers' shared lock: a freeze waits for the writes in
            # flight to commit (so their change events are visible to the final catch-up), and
            # later writers see the row once they get their lock.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", FREEZE_LOCK_KEY)
            if frozen:
                await conn.execute(
                    "INSERT INTO frozen_domains (domain) VALUES ($1) ON CONFLICT DO NOTHING",
                    domain.value,
                )
            else:
                await conn.execute("DELETE FROM frozen_domains WHERE domain = $1", domain.value)
