"""The live routing table: loaded from PostgreSQL, reloaded on NOTIFY, with a TTL backstop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import asyncpg

from core.logging import get_logger
from gateway.routing import Route, RouteTable
from models.gateway.tables import RouteMode

log = get_logger(__name__)

NOTIFY_CHANNEL = "vortex_gateway_routes"  # migration 0012's trigger on gateway_routes

_LOAD = "SELECT prefix, mode, canary_percent, cohort, legacy_writes_frozen FROM gateway_routes"


def _route(row: Any) -> Route:
    cohort = row["cohort"]
    if isinstance(cohort, str):  # asyncpg hands jsonb over as text without a codec
        cohort = json.loads(cohort)
    return Route(
        prefix=row["prefix"],
        mode=RouteMode(row["mode"]),
        canary_percent=int(row["canary_percent"]),
        cohort=frozenset(str(c) for c in cohort or ()),
        legacy_writes_frozen=bool(row["legacy_writes_frozen"]),
    )


class RouteCache:
    """Holds the current `RouteTable`; a background task keeps it fresh.

    A NOTIFY (sent at commit by the table's trigger) reloads at once; the TTL reload covers a
    lost listener connection. While the database is unreachable the last table keeps serving.
    """

    def __init__(self, pool: asyncpg.Pool, dsn: str, ttl_seconds: float) -> None:
        self._pool = pool
        self._dsn = dsn
        self._ttl = ttl_seconds
        self.table = RouteTable()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.listening = asyncio.Event()

    async def reload(self) -> RouteTable:
        """Read the table now and swap it in."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_LOAD)
        self.table = RouteTable.of([_route(r) for r in rows], self.table.version + 1)
        return self.table

    async def start(self) -> None:
        """Load once (failing loudly if the database is down at start), then keep fresh."""
        await self.reload()
        self._task = asyncio.create_task(self._run(), name="gateway-routes")

    async def close(self) -> None:
        """Stop the refresher."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                wake = asyncio.Event()
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_, w=wake: w.set())
                conn.add_termination_listener(lambda *_, w=wake: w.set())
                self.listening.set()
                await self.reload()  # after LISTEN: no change between load and listen is lost
                while not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self._ttl)
                    wake.clear()
                    if conn.is_closed():
                        break
                    await self.reload()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("gateway routes: reload failed; serving the last table", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), min(self._ttl, 2.0))
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
