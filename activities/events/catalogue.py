"""Every event type, its stream and its payload: the source of `docs/asyncapi.yaml`.

`vortex events asyncapi` prints the AsyncAPI 3.0 document; a test keeps the committed file equal
to it and checks that every type the code emits is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from activities.events.streams import (
    GLOBAL_CHANNEL,
    PAYMENT_EVENTS,
    STREAMS,
    TRANSACTION_EVENTS,
    USER_EVENTS,
)

_UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
_NULLABLE_UUID: dict[str, Any] = {"type": ["string", "null"], "format": "uuid"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_NULLABLE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_STR: dict[str, Any] = {"type": "string"}
_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
_MINOR: dict[str, Any] = {"type": "integer", "description": "minor units of `currency`"}
_CURRENCY: dict[str, Any] = {"type": "string", "pattern": "^[A-Z]{3}$"}


@dataclass(frozen=True)
class EventType:
    """One event type: where it is published, when, and its payload's fields."""

    name: str
    stream: str
    summary: str
    payload: dict[str, dict[str, Any]]


_TRANSACTION: dict[str, dict[str, Any]] = {
    "id": _UUID,
    "account_id": _UUID,
    "user_id": _UUID,
    "journal_entry_id": _NULLABLE_UUID,
    "hold_id": _NULLABLE_UUID,
    "kind": _STR,
    "amount": _MINOR,
    "currency": _CURRENCY,
    "direction": {"enum": ["credit", "debit"]},
    "status": {"enum": ["pending", "posted", "released", "expired", "failed", "memo"]},
    "counterparty": _NULLABLE_STR,
    "description": _STR,
    "merchant": _NULLABLE_STR,
    "category": _NULLABLE_STR,
    "external_id": _NULLABLE_STR,
    "occurred_at": _TIME,
}
_PAYMENT: dict[str, dict[str, Any]] = {
    "payment_id": _UUID,
    "user_id": _UUID,
    "kind": _STR,
    "status": _STR,
    "account_id": {**_UUID, "description": "the source account"},
    "to_account_id": _NULLABLE_UUID,
    "amount": _MINOR,
    "currency": _CURRENCY,
    "failure_reason": _NULLABLE_STR,
    "updated_at": _TIME,
}
_ACCOUNT: dict[str, dict[str, Any]] = {
    "account_id": _UUID,
    "number": _STR,
    "owner_user_id": _UUID,
    "currency": _CURRENCY,
    "type": _STR,
    "name": _STR,
    "opened_at": _TIME,
}

_NOTICE: dict[str, dict[str, Any]] = {
    "id": _UUID,
    "category": {"enum": ["payments", "security", "insights", "announcements"]},
    "type": {**_STR, "description": "the event type the notice is about"},
    "title": _STR,
    "body": _STR,
    "read": {"type": "boolean"},
    "created_at": _TIME,
}
_STAFF_MESSAGE: dict[str, dict[str, Any]] = {
    "id": {**_UUID, "description": "the staff send"},
    "category": _NOTICE["category"],
    "title": _STR,
    "body": _STR,
    "created_at": _TIME,
}
_SECURITY_CHANGE: dict[str, dict[str, Any]] = {"user_id": _UUID, "at": _TIME}
# Notifications (issue 9): what the notifier feeds on besides the ledger and payment events,
# and what it pushes. `security.password_changed` and `security.mfa_changed` have templates and
# are fed, but nothing emits them yet; `report.ready` comes with each monthly report (issue 14).
_NOTIFICATION_TYPES: tuple[EventType, ...] = (
    EventType(
        "notification.new",
        USER_EVENTS,
        "A notice for the user (pushed to user.<id>); written with the in-app notice.",
        _NOTICE,
    ),
    EventType(
        "announcement.new",
        USER_EVENTS,
        "A staff announcement to everyone (user_id empty, channel global.announcements).",
        _STAFF_MESSAGE,
    ),
    EventType("staff.message", USER_EVENTS, "Staff sent the user a message.", _STAFF_MESSAGE),
    EventType(
        "security.login_new_device",
        USER_EVENTS,
        "A login from a device the user had not used before.",
        {"user_id": _UUID, "device": _STR, "client": _STR, "at": _TIME},
    ),
    EventType(
        "security.password_changed", USER_EVENTS, "The password was changed.", _SECURITY_CHANGE
    ),
    EventType(
        "security.mfa_changed", USER_EVENTS, "The second factor was changed.", _SECURITY_CHANGE
    ),
    EventType(
        "report.ready",
        USER_EVENTS,
        "A report for the user is ready.",
        {"user_id": _UUID, "report_id": _UUID, "report_name": _STR, "period": _STR},
    ),
)

EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        "transaction.created",
        TRANSACTION_EVENTS,
        "A transaction row appears: a posting, a hold (pending) or a memo.",
        _TRANSACTION,
    ),
    EventType(
        "transaction.updated",
        TRANSACTION_EVENTS,
        "A transaction's status changes (pending -> posted, released, expired) or its category.",
        _TRANSACTION,
    ),
    EventType(
        "transaction.deleted",
        TRANSACTION_EVENTS,
        "A memo is deleted.",
        {"id": _UUID, "account_id": _UUID},
    ),
    EventType(
        "balance.updated",
        TRANSACTION_EVENTS,
        "An account's posted or held amount changes.",
        {
            "account_id": _UUID,
            "user_id": _UUID,
            "currency": _CURRENCY,
            "posted": _MINOR,
            "held": _MINOR,
            "available": _MINOR,
            "status": _STR,
            "as_of": _TIME,
        },
    ),
    EventType("account.opened", TRANSACTION_EVENTS, "An account is opened.", _ACCOUNT),
    EventType(
        "account.closed",
        TRANSACTION_EVENTS,
        "An account is closed (its balance swept to another account of the owner).",
        {
            "account_id": _UUID,
            "closed_at": _TIME,
            "swept_amount": _MINOR,
            "sweep_to_account_id": _NULLABLE_UUID,
            "sweep_entry_id": _NULLABLE_UUID,
        },
    ),
    EventType("payment.initiated", PAYMENT_EVENTS, "A payment row is created.", _PAYMENT),
    EventType(
        "payment.updated",
        PAYMENT_EVENTS,
        "Another non-final status: scheduled, pending_approval, processing, submitted.",
        _PAYMENT,
    ),
    EventType(
        "payment.requires_action",
        PAYMENT_EVENTS,
        "The payment waits for the customer or for ops.",
        _PAYMENT,
    ),
    EventType("payment.completed", PAYMENT_EVENTS, "The money moved.", _PAYMENT),
    EventType(
        "payment.failed",
        PAYMENT_EVENTS,
        "It failed or was rejected (see failure_reason).",
        _PAYMENT,
    ),
    EventType(
        "payment.cancelled", PAYMENT_EVENTS, "The customer, ops or the bank cancelled it.", _PAYMENT
    ),
    EventType(
        "linked_account.updated",
        USER_EVENTS,
        "An external account link changes status.",
        {"linked_account_id": _UUID, "account_id": _UUID, "status": _STR},
    ),
    EventType(
        "ai.insight.ready",
        USER_EVENTS,
        "An AI insight was computed and stored for the user (read it by its id); a monthly "
        "report's (kind `monthly_report`) also carries `period` (YYYY-MM) and `url`.",
        {"insight_id": _UUID, "user_id": _UUID, "kind": _STR},
    ),
    *_NOTIFICATION_TYPES,
)

_ENVELOPE_FIELDS = {
    "event_id": {"type": "string", "description": "outbox id; the same on a re-publish"},
    "type": {"type": "string"},
    "v": {"const": "1"},
    "user_id": {"type": "string", "description": "owner uuid, empty for global events"},
    "aggregate_id": _UUID,
    "channels": {"type": "string", "description": "JSON array of WebSocket channel names"},
    "data": {"type": "string", "description": "JSON object: the payload below"},
    "ts": _TIME,
}


def _message(event: EventType) -> dict[str, Any]:
    return {
        "name": event.name,
        "title": event.name,
        "summary": event.summary,
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "description": "A Redis stream entry; `data` holds the payload described here.",
            "properties": {
                **_ENVELOPE_FIELDS,
                "type": {"const": event.name},
                "data": {
                    "type": "object",
                    "properties": event.payload,
                    "required": sorted(event.payload),
                },
            },
            "required": sorted(_ENVELOPE_FIELDS),
        },
    }


def _channel_key(stream: str) -> str:
    first, rest = stream.split(".", 1)
    return first + rest.capitalize()


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 description of the Redis streams the relay writes."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for stream in STREAMS:
        key = _channel_key(stream)
        names = [e.name for e in EVENT_TYPES if e.stream == stream]
        channels[key] = {
            "address": stream,
            "title": stream,
            "servers": [{"$ref": "#/servers/redis"}],
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        }
        operations[f"publish{key[0].upper()}{key[1:]}"] = {
            "action": "send",
            "summary": f"The outbox relay XADDs committed events to {stream}.",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{n}"} for n in names],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "VortexCore domain events",
            "version": "1.0.0",
            "description": (
                "Events written to the outbox in the transaction of the change and relayed to "
                "Redis streams (at least once, same event_id on a repeat, commit order per "
                f"aggregate). WebSocket channels: user.<id>, account.<id>, {GLOBAL_CHANNEL}. "
                "See docs/events.md."
            ),
        },
        "servers": {
            "redis": {
                "host": "127.0.0.1:6379",
                "protocol": "redis",
                "description": "VORTEX_REDIS_URL",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": {e.name: _message(e) for e in EVENT_TYPES}},
    }
