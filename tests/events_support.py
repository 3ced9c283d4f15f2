"""Helpers for event tests: outbox rows written directly, stream contents read back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.events.streams import STREAMS, decode_entry
from tests.rail_support import eventually

_INSERT = text(
    "INSERT INTO outbox (topic, type, aggregate_id, user_id, payload) "
    "SELECT :topic, 'test.event', CAST(:agg AS uuid), NULL, "
    "jsonb_build_object('n', n, 'aggregate', CAST(:agg AS text)) "
    "FROM generate_series(1, :count) AS n"
)


async def write_outbox_rows(
    engine: AsyncEngine,
    count: int,
    *,
    topic: str = "user.events",
    aggregate: uuid.UUID | None = None,
) -> None:
    """Commit `count` test events of one aggregate in one transaction."""
    async with engine.begin() as conn:
        await conn.execute(
            _INSERT, {"topic": topic, "agg": aggregate or uuid.uuid4(), "count": count}
        )


async def outbox_ids(engine: AsyncEngine, *, published: bool | None = None) -> list[int]:
    """Ids of the outbox rows (optionally only published or only unpublished ones)."""
    where = {
        None: "",
        True: " WHERE published_at IS NOT NULL",
        False: " WHERE published_at IS NULL",
    }
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT id FROM outbox{where[published]} ORDER BY id"))
        return [int(r[0]) for r in rows]


async def stream_events(redis: Redis, *streams: str) -> list[dict[str, Any]]:
    """Every entry of the given streams (default: all three), decoded, in stream order."""
    events: list[dict[str, Any]] = []
    for stream in streams or STREAMS:
        entries: list[tuple[str, dict[str, str]]] = await redis.xrange(stream)  # type: ignore[assignment]
        for entry_id, fields in entries:
            events.append({"stream": stream, "entry_id": entry_id, **decode_entry(fields)})
    return events


async def until(check: Callable[[], Awaitable[bool]], *, max_wait: float = 20.0) -> None:
    """Poll `check` until it is true (bounded, not a timing check)."""

    async def probe() -> bool | None:
        return True if await check() else None

    await eventually(probe, max_wait=max_wait, interval=0.05)
