"""What the relay publishes and what a client sees: the one frame-type table, and frames.

The relay (`activities/events/relay.py`) XADDs every outbox row to one of the `STREAMS` of
`activities/events/streams.py`, with the string fields `event_id`, `type`, `v`, `user_id`,
`aggregate_id`, `channels` (JSON list), `data` (JSON object) and `ts`. Only the domain types in
`FRAME_TYPES` reach clients: a new domain type stays server-side until someone decides what
clients may see of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Domain event type -> WebSocket frame type (the ONE mapping; docs/websocket.md lists it).
FRAME_TYPES: dict[str, str] = {
    "balance.updated": "balance.updated",
    "transaction.created": "transaction.new",
    "transaction.updated": "transaction.updated",
    "transaction.deleted": "transaction.deleted",
    "account.opened": "account.opened",
    "account.closed": "account.closed",
    "payment.initiated": "payment.initiated",
    "payment.updated": "payment.updated",
    "payment.requires_action": "payment.requires_action",
    "payment.completed": "payment.completed",
    "payment.failed": "payment.failed",
    "payment.cancelled": "payment.cancelled",
    "notification.new": "notification.new",
    # An announcement is a notification for everyone; its channel says so.
    "announcement.new": "notification.new",
    "ai.insight.ready": "ai.insight.ready",
    "linked_account.updated": "linked_account.updated",
}

# Domain types that never reach clients as such: the notifier turns each into a stored notice,
# whose `notification.new` is what the user sees (the raw security events also carry a device
# digest and a client address that a dashboard has no use for).
SERVER_ONLY: frozenset[str] = frozenset(
    {
        "staff.message",
        "security.login_new_device",
        "security.password_changed",
        "security.mfa_changed",
        "report.ready",
    }
)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One relayed event as read from a stream (already mapped to its frame type)."""

    stream: str
    entry_id: str
    event_id: str
    frame_type: str
    channels: tuple[str, ...]
    data: dict[str, Any]
    ts: str


def parse_entry(stream: str, entry_id: str, fields: dict[str, str]) -> StreamEntry | None:
    """The entry as an event for clients, or None when its type is not for clients or the
    entry is malformed (a bad entry must never stop the reader)."""
    frame_type = FRAME_TYPES.get(fields.get("type", ""))
    if frame_type is None:
        return None
    try:
        channels = json.loads(fields.get("channels", "[]"))
        data = json.loads(fields.get("data", "{}"))
    except ValueError:
        return None
    if not isinstance(channels, list) or not isinstance(data, dict):
        return None
    return StreamEntry(
        stream,
        entry_id,
        str(fields.get("event_id", "")),
        frame_type,
        tuple(c for c in channels if isinstance(c, str)),
        data,
        str(fields.get("ts", "")),
    )


def now_iso() -> str:
    """The current UTC time, ISO-8601."""
    return datetime.now(UTC).isoformat()


def frame(
    type_: str,
    *,
    data: dict[str, Any] | None = None,
    id_: str | None = None,
    channel: str | None = None,
    ts: str | None = None,
    event_id: str | None = None,
) -> str:
    """One server frame as JSON text: `{"id", "type", "channel", "data", "ts"}` (+ `event_id`
    on event frames)."""
    body: dict[str, Any] = {
        "id": id_,
        "type": type_,
        "channel": channel,
        "data": data or {},
        "ts": ts or now_iso(),
    }
    if event_id is not None:
        body["event_id"] = event_id
    return json.dumps(body, separators=(",", ":"), default=str)


def error_frame(code: str, message: str, **extra: Any) -> str:
    """An `error` frame: a stable `code` and a human `message`."""
    return frame("error", data={"code": code, "message": message, **extra})
