"""The Redis stream entry an outbox row becomes, and the channels it belongs to.

This is the one definition of the format that consumers (the WebSocket hub, the notifier, `vortex
watch`) read; `docs/events.md` describes it for people.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

PAYMENT_EVENTS = "payment.events"
TRANSACTION_EVENTS = "transaction.events"
USER_EVENTS = "user.events"
STREAMS: tuple[str, ...] = (PAYMENT_EVENTS, TRANSACTION_EVENTS, USER_EVENTS)

GLOBAL_CHANNEL = "global.announcements"
ANNOUNCEMENT_TYPE = "announcement.new"
PAYLOAD_VERSION = "1"


def channels_of(event_type: str, user_id: str | None, payload: Mapping[str, Any]) -> list[str]:
    """The WebSocket channels an event is for: its owner, and the account it concerns."""
    if user_id is None:
        return [GLOBAL_CHANNEL] if event_type == ANNOUNCEMENT_TYPE else []
    channels = [f"user.{user_id}"]
    account_id = payload.get("account_id")
    if account_id:
        channels.append(f"account.{account_id}")
    return channels


def entry_fields(
    event_id: int,
    event_type: str,
    aggregate_id: str,
    user_id: str | None,
    payload_json: str,
    created_at: datetime,
) -> dict[str, str]:
    """The fields of one stream entry; `event_id` (the outbox id) stays the same when a row is
    published again after a crash, so consumers dedupe by it."""
    payload = json.loads(payload_json)
    return {
        "event_id": str(event_id),
        "type": event_type,
        "v": PAYLOAD_VERSION,
        "user_id": user_id or "",
        "aggregate_id": aggregate_id,
        "channels": json.dumps(channels_of(event_type, user_id, payload)),
        "data": payload_json,
        "ts": created_at.isoformat(),
    }


def decode_entry(fields: Mapping[str, str]) -> dict[str, Any]:
    """A stream entry as plain values (channels and data parsed)."""
    return {
        "event_id": fields["event_id"],
        "type": fields["type"],
        "v": fields.get("v", PAYLOAD_VERSION),
        "user_id": fields.get("user_id") or None,
        "aggregate_id": fields.get("aggregate_id", ""),
        "channels": json.loads(fields.get("channels", "[]")),
        "data": json.loads(fields.get("data", "{}")),
        "ts": fields.get("ts", ""),
    }
