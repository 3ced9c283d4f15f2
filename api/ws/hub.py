"""The per-process hub: one XREAD reader on the three streams fanning out to local sockets by
channel, one pub/sub listener closing revoked sockets, and history reads for resume.

Every API process runs its own hub and serves only its own sockets; streams are read without
consumer groups, so each process sees every entry (decisions: WebSockets over Redis streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from activities.events.streams import STREAMS
from api.auth.user_status import REVOCATIONS_CHANNEL
from api.ws import cursor
from api.ws.connection import Connection
from api.ws.cursor import Positions, StreamId
from api.ws.events import StreamEntry, parse_entry
from api.ws.protocol import CloseCode
from core.redis import create_redis
from core.settings import Settings

log = structlog.get_logger("api.ws")
_RETRY_SECONDS = 0.5  # after a Redis error in a background loop
_READ_COUNT = 500  # entries per XREAD call
_STOP_SECONDS = 5.0


class Hub:
    """Local sockets by channel and by user, fed from the streams."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Own clients: XREAD BLOCK holds a connection (its timeout outlasts the block, so a
        # silent Redis is noticed); SUBSCRIBE waits without end by nature.
        block_seconds = settings.ws_read_block_ms / 1000
        self.redis: Redis = create_redis(
            settings.effective_redis_url, timeout=block_seconds + settings.redis_timeout_seconds
        )
        self._listener: Redis = create_redis(settings.effective_redis_url)
        self.positions: Positions = {}
        self._by_channel: dict[str, set[Connection]] = defaultdict(set)
        self._by_user: dict[uuid.UUID, set[Connection]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._positioned = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        """Start the reader and the revocation listener (a Redis that is down delays them;
        sockets are refused until both run, see `wait_ready`)."""
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="ws-stream-reader"),
            asyncio.create_task(self._revocation_loop(), name="ws-revocations"),
        ]

    async def wait_ready(self, seconds: float) -> bool:
        """Whether the reader knows its positions and revocations are heard (within timeout)."""
        try:
            async with asyncio.timeout(seconds):
                await self._positioned.wait()
                await self._subscribed.wait()
        except TimeoutError:
            return False
        return True

    async def _read_from_ends(self) -> None:
        """Start after the streams' current last entries."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in STREAMS:
                pipe.xrevrange(stream, count=1)
            lasts = await pipe.execute()
        for stream, last in zip(STREAMS, lasts, strict=True):
            self.positions[stream] = cursor.parse_id(last[0][0]) if last else cursor.ZERO
        self._positioned.set()

    async def stop(self) -> None:
        """Close every local socket (going away) and stop the background tasks."""
        self._stopping = True
        for connections in list(self._by_user.values()):
            for conn in list(connections):
                conn.request_close(1001, "server shutting down")
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: the loops also end on `_stopping`, in case a cancel was swallowed.
            await asyncio.wait(self._tasks, timeout=_STOP_SECONDS)
        await self.redis.aclose()
        await self._listener.aclose()

    def register(self, conn: Connection) -> Positions:
        """Start routing entries to `conn` (buffered until it goes live); returns the hub's
        positions at this instant: every later entry reaches the socket."""
        self._by_user[conn.user_id].add(conn)
        for channel in conn.channels:
            self._by_channel[channel].add(conn)
        return dict(self.positions)

    def subscribe(self, conn: Connection, channels: list[str]) -> None:
        """Add live subscriptions."""
        for channel in channels:
            conn.channels.add(channel)
            self._by_channel[channel].add(conn)

    def unsubscribe(self, conn: Connection, channels: list[str]) -> None:
        """Drop subscriptions (unknown ones are ignored)."""
        for channel in channels:
            conn.channels.discard(channel)
            self._drop(channel, conn)

    def unregister(self, conn: Connection) -> None:
        """Forget a closed socket."""
        for channel in list(conn.channels):
            self._drop(channel, conn)
        users = self._by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self._by_user[conn.user_id]

    def _drop(self, channel: str, conn: Connection) -> None:
        members = self._by_channel.get(channel)
        if members is not None:
            members.discard(conn)
            if not members:
                del self._by_channel[channel]

    def dispatch(self, stream: str, entry_id: str, fields: dict[str, str]) -> bool:
        """Hand one stream entry to the local sockets on its channels (in stream order);
        whether any socket got it."""
        position = cursor.parse_id(entry_id)
        if position <= self.positions.get(stream, cursor.ZERO):
            return False
        self.positions[stream] = position
        entry = parse_entry(stream, entry_id, fields)
        if entry is None:
            return False
        targets: set[Connection] = set()
        for channel in entry.channels:
            targets |= self._by_channel.get(channel, set())
        snapshot = dict(self.positions)  # shared by the targets, never mutated by them
        for conn in targets:
            conn.offer(entry, snapshot)
        return bool(targets)

    async def _read_loop(self) -> None:
        # Ends on `_stopping` too: a cancel that lands while redis-py's own timeout fires can
        # surface as a Redis TimeoutError, which the loop would otherwise retry forever.
        while not self._stopping:
            try:
                if not self._positioned.is_set():
                    await self._read_from_ends()
                ids: Any = {s: cursor.format_id(self.positions[s]) for s in STREAMS}
                answer: Any = await self.redis.xread(
                    ids, count=_READ_COUNT, block=self.settings.ws_read_block_ms
                )
            except (RedisError, OSError) as exc:
                log.warning("ws.reader_error", error=type(exc).__name__)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for stream, entries in answer or []:
                for entry_id, fields in entries:
                    if self.dispatch(stream, entry_id, fields):
                        # Let the senders write before the next entry: a burst read in one
                        # XREAD must not fill the queue of a client that keeps up.
                        await asyncio.sleep(0)

    async def _revocation_loop(self) -> None:
        while not self._stopping:
            pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(REVOCATIONS_CHANNEL)
                self._subscribed.set()
                async for message in pubsub.listen():
                    self._revoke(message.get("data"))
            except (RedisError, OSError) as exc:
                log.warning("ws.revocation_listener_error", error=type(exc).__name__)
                await asyncio.sleep(_RETRY_SECONDS)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()

    def _revoke(self, data: object) -> None:
        try:
            body = json.loads(str(data))
            user = uuid.UUID(body["user"]) if body.get("user") else None
            sid = str(body["sid"]) if body.get("sid") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        for connections in list(self._by_user.values()):
            for conn in list(connections):
                if conn.user_id == user or (sid is not None and conn.session_id == sid):
                    conn.request_close(CloseCode.REVOKED, "session revoked", "session-revoked")

    async def history(
        self, stream: str, after: StreamId, limit: int
    ) -> list[StreamEntry | StreamId] | None:
        """Entries of `stream` after `after` (exclusive) up to its end, in order: parsed entries
        for clients, bare positions for the rest. None when the range is past the retention or
        longer than `limit` (the client must `resync`)."""
        if not await self._retained(stream, after):
            return None
        found: list[StreamEntry | StreamId] = []
        start = "(" + cursor.format_id(after)
        while True:
            page: Any = await self.redis.xrange(stream, min=start, max="+", count=_READ_COUNT)
            for entry_id, fields in page:
                parsed = parse_entry(stream, entry_id, fields)
                found.append(parsed if parsed is not None else cursor.parse_id(entry_id))
            if len(found) > limit:
                return None
            if len(page) < _READ_COUNT:
                return found
            start = "(" + page[-1][0]

    async def _retained(self, stream: str, after: StreamId) -> bool:
        """Whether every entry after `after` is still in the stream (nothing trimmed past it).
        `max-deleted-entry-id` alone cannot say: Redis 7.0 leaves it at 0-0 when approximate
        MAXLEN trimming drops whole nodes (seen on the CI machine's Redis 7.0)."""
        try:
            info: dict[str, Any] = await self.redis.xinfo_stream(stream)
        except ResponseError:  # no such stream: only a cursor that saw nothing of it fits
            return after == cursor.ZERO
        last = cursor.parse_id(str(info["last-generated-id"]))
        if after > last:
            return False  # not from this stream's history (e.g. Redis lost its data)
        deleted = info.get("max-deleted-entry-id")
        if deleted is not None and after < cursor.parse_id(str(deleted)):
            return False  # an XDEL (or an exact trim) removed something after the cursor
        length, added = int(info["length"]), info.get("entries-added")
        if added is not None and int(added) == length:
            return True  # Redis >= 7: nothing was ever removed from this stream
        # Redis 6.2: approximate MAXLEN trimming never leaves fewer than MAXLEN entries, so a
        # shorter stream was never trimmed.
        if added is None and length < self.settings.event_stream_maxlen:
            return True
        # Something was removed: the cursor must reach the first entry still there.
        first = info.get("first-entry")
        return first is not None and after >= _before(cursor.parse_id(str(first[0])))


def _before(position: StreamId) -> StreamId:
    """The largest id below `position` that a cursor could hold when nothing is missing."""
    ms, seq = position
    return (ms, seq - 1) if seq > 0 else (ms - 1, 2**64 - 1)
