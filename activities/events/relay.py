"""The outbox relay: publishes committed outbox rows to Redis streams, then marks them.

A plain asyncio service, not a workflow (a tight loop, not a business process). One leader at a
time, chosen by a PostgreSQL advisory lock held on the relay's own connection: a second relay
process waits as a standby and takes over when the leader's connection ends. The leader reads
unpublished rows in id order (never "id > last id": sequence values commit out of order, and
such paging skips rows), XADDs them in that order in one pipeline, then marks them published.
A crash between the two steps publishes those rows again, with the same `event_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from activities.events.streams import entry_fields
from core.logging import get_logger
from core.settings import Settings

log = get_logger("vortex.relay")

NOTIFY_CHANNEL = "vortex_outbox"
# pg_advisory_lock key of the relay leader (any constant unique to this use).
LEADER_LOCK_KEY = 0x766F7274_6578  # "vortex"

_FETCH = """
SELECT id, topic, type, aggregate_id::text, user_id::text, payload::text, created_at
FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1
"""
_MARK = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"
_PRUNE = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) LIMIT $2
)
"""
_PRUNE_CHUNK = 5000

PUBLISHED = Counter("vortex_relay_published_total", "Outbox events published to Redis streams")
PUBLISH_DELAY = Histogram(
    "vortex_relay_publish_delay_seconds",
    "From an outbox row's commit timestamp to its XADD",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@dataclass(frozen=True)
class RelayConfig:
    """How the relay batches, waits, trims and prunes."""

    batch_size: int = 500
    poll_interval_seconds: float = 1.0
    stream_maxlen: int = 100_000
    retention_seconds: int = 7 * 24 * 3600
    prune_interval_seconds: float = 300.0
    reconnect_seconds: float = 1.0

    @classmethod
    def of(cls, settings: Settings) -> RelayConfig:
        """The relay configuration from settings."""
        return cls(
            batch_size=settings.relay_batch_size,
            poll_interval_seconds=settings.relay_poll_interval_seconds,
            stream_maxlen=settings.event_stream_maxlen,
            retention_seconds=settings.relay_retention_seconds,
            prune_interval_seconds=settings.relay_prune_interval_seconds,
        )


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


class OutboxRelay:
    """Relays outbox rows to the Redis streams named by their topic."""

    def __init__(self, dsn: str, redis: Redis, config: RelayConfig | None = None) -> None:
        self._dsn = dsn
        self._redis = redis
        self._config = config or RelayConfig()
        self.is_leader = False

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; a lost database or Redis connection is retried."""
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("relay cannot reach the database", error=str(exc))
                await _wait(stop, self._config.reconnect_seconds)
                continue
            try:
                await self._lead(conn, stop)
            except (OSError, asyncpg.PostgresError, RedisError, TimeoutError) as exc:
                log.warning("relay interrupted; reconnecting", error=str(exc))
                await _wait(stop, self._config.reconnect_seconds)
            finally:
                self.is_leader = False
                with contextlib.suppress(Exception):  # closing also releases the leader lock
                    await asyncio.wait_for(conn.close(), 5)

    async def _lead(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        """Become the leader (or wait as a standby), then publish until `stop`."""
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY):
            await _wait(stop, self._config.poll_interval_seconds)
            if stop.is_set():
                return
        self.is_leader = True
        log.info("relay is the leader")
        wake = asyncio.Event()
        await conn.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        while not stop.is_set():
            wake.clear()  # before reading: a NOTIFY from now on wakes the next wait
            published = await self.publish_batch(conn)
            if loop.time() >= next_prune:
                await self.prune(conn)
                next_prune = loop.time() + self._config.prune_interval_seconds
            if published < self._config.batch_size:
                waiting = asyncio.create_task(wake.wait())
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait(
                    [waiting, stopping],
                    timeout=self._config.poll_interval_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiting.cancel()
                stopping.cancel()

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """Publish the oldest unpublished rows (one batch) in id order; the count published."""
        rows = await conn.fetch(_FETCH, self._config.batch_size)
        if not rows:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for row in rows:
                fields = entry_fields(
                    row["id"],
                    row["type"],
                    row["aggregate_id"],
                    row["user_id"],
                    row["payload"],
                    row["created_at"],
                )
                pipe.xadd(
                    row["topic"],
                    fields,  # type: ignore[arg-type]  # redis-py's field type is invariant
                    maxlen=self._config.stream_maxlen,
                    approximate=True,
                )
            await pipe.execute()
        await self._mark_published(conn, [row["id"] for row in rows])
        now = await conn.fetchval("SELECT now()")
        for row in rows:
            PUBLISH_DELAY.observe(max(0.0, (now - row["created_at"]).total_seconds()))
        PUBLISHED.inc(len(rows))
        return len(rows)

    async def _mark_published(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        """Mark rows published (after their XADD: a crash in between republishes them)."""
        await conn.execute(_MARK, ids)

    async def prune(self, conn: asyncpg.Connection) -> int:
        """Delete published rows older than the retention, in bounded chunks."""
        pruned = 0
        while True:
            status = await conn.execute(_PRUNE, float(self._config.retention_seconds), _PRUNE_CHUNK)
            deleted = int(status.split()[-1])
            pruned += deleted
            if deleted < _PRUNE_CHUNK:
                return pruned


_BACKLOG = """
SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
FROM outbox WHERE published_at IS NULL
"""


async def outbox_backlog(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, float]:
    """Unpublished rows and the age in seconds of the oldest one (the relay's lag)."""
    row = await conn.fetchrow(_BACKLOG)
    assert row is not None
    return int(row[0]), float(row[1])
