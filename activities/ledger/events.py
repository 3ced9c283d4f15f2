"""Outbox events written in the same transaction as a balance change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from activities.ledger.sql import _INSERT_EVENTS
from models.ledger.tables import TRANSACTION_EVENTS_TOPIC

if TYPE_CHECKING:  # the engine imports this module
    from activities.ledger.engine import _Account


@dataclass(slots=True)
class _Event:
    type: str
    aggregate_id: uuid.UUID
    user_id: uuid.UUID | None
    payload: dict[str, Any]


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


def _balance_event(acc: _Account, now: datetime) -> _Event:
    return _Event(
        "balance.updated",
        acc.id,
        acc.owner_user_id,
        {
            "account_id": str(acc.id),
            "user_id": str(acc.owner_user_id),
            "currency": acc.currency,
            "posted": acc.posted,
            "held": acc.held,
            "available": acc.posted - acc.held,
            "status": acc.status,
            "as_of": now.isoformat(),
        },
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _transaction_event(type_: str, row: Mapping[Any, Any]) -> _Event:
    payload = {k: _jsonable(v) for k, v in row.items() if k not in ("created_at", "updated_at")}
    return _Event(type_, row["account_id"], row["user_id"], payload)


def _event_params(events: Sequence[_Event]) -> dict[str, Any]:
    return {
        "topic": TRANSACTION_EVENTS_TOPIC,
        "o_type": [e.type for e in events],
        "o_agg": [e.aggregate_id for e in events],
        "o_user": [e.user_id for e in events],
        "o_payload": [_json(e.payload) for e in events],
    }


async def _write_events(conn: AsyncConnection, events: Sequence[_Event], now: datetime) -> None:
    if events:
        await conn.execute(_INSERT_EVENTS, {"now": now, **_event_params(events)})
