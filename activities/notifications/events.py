"""Which domain events deserve a notice, and what a notice of one says.

`notice_for` decides from a stream entry alone (type, user, payload), so the feed never reads
the database for the many events that deserve nothing. `notice_content` turns the outbox row's
payload into a template key, a category and the template's variables (strings only).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activities.events.streams import ANNOUNCEMENT_TYPE, USER_EVENTS
from activities.notifications.catalog import TEMPLATES
from activities.notifications.templates import format_money, format_time
from core.settings import Settings
from models.notifications.tables import NotificationCategory

# Event types this module defines (topic `user.events`); the others come from the ledger,
# the payments trigger (migration 0005) and, later, the AI issue (`report.ready`).
LOGIN_NEW_DEVICE = "security.login_new_device"
PASSWORD_CHANGED = "security.password_changed"  # noqa: S105 - an event type
MFA_CHANGED = "security.mfa_changed"
REPORT_READY = "report.ready"
STAFF_MESSAGE = "staff.message"
ANNOUNCEMENT = ANNOUNCEMENT_TYPE
NOTIFICATION_NEW = "notification.new"
USER_EVENTS_TOPIC = USER_EVENTS

_PAYMENT_NOTICES = {"payment.completed", "payment.failed", "payment.requires_action"}
_SECURITY_NOTICES = {LOGIN_NEW_DEVICE, PASSWORD_CHANGED, MFA_CHANGED}


@dataclass(frozen=True)
class StreamEvent:
    """One entry of an event stream, as the relay writes it."""

    stream: str
    entry_id: str
    event_id: int
    type: str
    user_id: uuid.UUID | None
    data: dict[str, Any]


def parse_entry(stream: str, entry_id: str, fields: Mapping[str, str]) -> StreamEvent | None:
    """The entry's event, or None when it is not one the relay wrote (it is acknowledged)."""
    try:
        user = fields.get("user_id") or ""
        data = json.loads(fields.get("data") or "{}")
        return StreamEvent(
            stream=stream,
            entry_id=entry_id,
            event_id=int(fields["event_id"]),
            type=fields["type"],
            user_id=uuid.UUID(user) if user else None,
            data=data if isinstance(data, dict) else {},
        )
    except (KeyError, ValueError):
        return None


def deserves_notice(event: StreamEvent, settings: Settings) -> bool:
    """True for the events a customer is told about (see the event catalogue)."""
    if event.type == ANNOUNCEMENT:
        return event.user_id is None
    if event.user_id is None:
        return False
    if event.type in _PAYMENT_NOTICES or event.type in _SECURITY_NOTICES:
        return True
    if event.type in (REPORT_READY, STAFF_MESSAGE):
        return True
    if event.type == "transaction.created":
        return _money_received(event.data, settings) or _large_card(event.data, settings)
    return False


def _money_received(data: Mapping[str, Any], settings: Settings) -> bool:
    return (
        data.get("direction") == "credit"
        and data.get("kind") in settings.notification_money_received_kinds
    )


def _large_card(data: Mapping[str, Any], settings: Settings) -> bool:
    amount = data.get("amount")
    return (
        data.get("direction") == "debit"
        and data.get("kind") == "card"
        and isinstance(amount, int)
        and abs(amount) >= settings.notification_large_card_minor
    )


@dataclass(frozen=True)
class NoticeContent:
    """What a notice of an event is: its template, category and variables."""

    template: str
    category: NotificationCategory
    context: dict[str, str]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _money(payload: Mapping[str, Any], locale: str) -> str:
    amount, currency = payload.get("amount"), payload.get("currency")
    if not isinstance(amount, int) or not isinstance(currency, str):
        return ""
    return format_money(abs(amount), currency, locale)


def _moment(value: object, time_zone: str, locale: str) -> str:
    try:
        return format_time(datetime.fromisoformat(str(value)), time_zone, locale)
    except ValueError:
        return ""


def notice_content(
    event_type: str, payload: Mapping[str, Any], locale: str, time_zone: str
) -> NoticeContent | None:
    """The notice of an outbox event for its user (None: this event has none)."""
    if event_type in _PAYMENT_NOTICES:
        return _content(
            event_type,
            amount=_money(payload, locale),
            description=_text(payload.get("description")),
            failure_reason=_text(payload.get("failure_reason")),
        )
    if event_type == "transaction.created":
        key = "money.received" if payload.get("direction") == "credit" else "card.large_transaction"
        return _content(
            key,
            amount=_money(payload, locale),
            counterparty=_text(payload.get("counterparty")),
            description=_text(payload.get("description")),
            merchant=_text(payload.get("merchant") or payload.get("counterparty")),
        )
    if event_type in _SECURITY_NOTICES:
        return _content(
            event_type,
            device=_text(payload.get("device")),
            at=_moment(payload.get("at"), time_zone, locale),
        )
    if event_type == REPORT_READY:
        return _content(
            REPORT_READY,
            report_name=_text(payload.get("report_name")),
            period=_text(payload.get("period")),
        )
    if event_type in (STAFF_MESSAGE, ANNOUNCEMENT):
        category = payload.get("category", NotificationCategory.ANNOUNCEMENTS.value)
        return NoticeContent(
            template=STAFF_MESSAGE,
            category=NotificationCategory(category),
            context={"title": _text(payload.get("title")), "body": _text(payload.get("body"))},
        )
    return None


def _content(key: str, **values: str) -> NoticeContent:
    spec = TEMPLATES[key]
    return NoticeContent(
        template=key,
        category=spec.category,
        context={name: values.get(name, "") for name in spec.variables},
    )
