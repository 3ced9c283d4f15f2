"""One authenticated socket as the hub sees it: subscriptions, cursor, bounded queue, dedupe.

Frames are built when an entry is handed over (by the hub, in stream order), so a frame's
cursor covers exactly what was queued before it. While the socket catches up from history,
live entries wait in a bounded buffer instead of the queue (gapless resume, docs/websocket.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from api.ws import cursor
from api.ws.cursor import Positions, StreamId
from api.ws.events import StreamEntry, error_frame, frame
from api.ws.protocol import CloseCode


@dataclass(eq=False)
class Connection:
    """A socket's delivery state; all methods run on the event loop, none awaits."""

    user_id: uuid.UUID
    session_id: str
    expires_at: int
    queue_size: int
    dedupe_window: int
    channels: set[str] = field(default_factory=set)
    cursor: Positions = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    close_code: int | None = None
    close_reason: str = ""
    final_frame: str | None = None

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(self.queue_size)
        # Entries (with the hub's positions when they arrived) held back during catch-up.
        self._buffer: list[tuple[StreamEntry, Positions]] | None = []
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.closed = asyncio.Event()

    @property
    def live(self) -> bool:
        """Whether entries go straight to the queue (catch-up is over)."""
        return self._buffer is None

    def request_close(self, code: int, reason: str, error: str | None = None) -> None:
        """Ask the socket's task to close it (the first reason wins); `error` names the error
        frame sent just before the close (not queued: the queue may be what is stuck)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self.final_frame = error_frame(error, reason) if error else None
        self.closed.set()

    def offer(self, entry: StreamEntry, snapshot: Positions) -> None:
        """An entry on one of this socket's channels, with the hub's positions at that moment."""
        if self.closed.is_set():
            return
        if self._buffer is not None:
            if len(self._buffer) >= self.queue_size:
                self.request_close(CloseCode.SLOW_CONSUMER, "too many undelivered events")
                return
            self._buffer.append((entry, snapshot))
            return
        built = self.build(entry, snapshot)
        if built is None:
            return
        try:
            self.queue.put_nowait(built)
        except asyncio.QueueFull:
            # Never buffer without bound: the client resumes from its last id when it is back.
            self.request_close(CloseCode.SLOW_CONSUMER, "too many undelivered events")

    def build(self, entry: StreamEntry, snapshot: Positions) -> str | None:
        """The frame for an entry, advancing the cursor; None for a repeat or an old entry."""
        position = cursor.parse_id(entry.entry_id)
        if position <= self.cursor.get(entry.stream, cursor.ZERO):
            return None  # delivered by catch-up already
        self._advance(snapshot)
        self.cursor[entry.stream] = position
        if entry.event_id in self._seen:
            return None  # the relay published this event again (new entry id, same event id)
        self._remember(entry.event_id)
        channel = next((c for c in entry.channels if c in self.channels), None)
        return frame(
            entry.frame_type,
            id_=cursor.encode(self.cursor),
            channel=channel,
            data=entry.data,
            ts=entry.ts,
            event_id=entry.event_id,
        )

    def take_buffer(self) -> list[str]:
        """Frames for what arrived during catch-up; when nothing is left, the socket goes live
        (in the same step, so nothing can slip between buffer and queue)."""
        assert self._buffer is not None
        if not self._buffer:
            self._buffer = None
            return []
        pending, self._buffer = self._buffer, []
        return [f for entry, snap in pending if (f := self.build(entry, snap)) is not None]

    def caught_up_to(self, stream: str, position: StreamId) -> None:
        """History of `stream` has been sent up to `position`."""
        if position > self.cursor.get(stream, cursor.ZERO):
            self.cursor[stream] = position

    def heartbeat(self, hub_positions: Positions) -> str:
        """A `ping` frame; while live its id also covers every entry the hub has handled."""
        if self.live:
            self._advance(hub_positions)
        return frame("ping", id_=cursor.encode(self.cursor))

    def seen(self, event_id: str) -> bool:
        """Whether this event id was already sent on this socket (and remember it if not)."""
        if event_id in self._seen:
            return True
        self._remember(event_id)
        return False

    def _advance(self, positions: Positions) -> None:
        for stream, position in positions.items():
            if position > self.cursor.get(stream, cursor.ZERO):
                self.cursor[stream] = position

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        if len(self._seen) > self.dedupe_window:
            self._seen.popitem(last=False)
