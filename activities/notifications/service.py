"""Notification operations that run in the caller's transaction (the API and the activities
both call them): store a notice with its push event, mark deliveries, read preferences."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.notifications.events import NOTIFICATION_NEW, USER_EVENTS_TOPIC
from models.ledger.tables import LedgerAccount, OutboxEvent, Posting
from models.notifications.schemas import NotificationPublic
from models.notifications.tables import (
    Notification,
    NotificationChannel,
    NotificationDelivery,
    NotificationPreference,
)
from models.payments.tables import Payment


def notification_public(row: Notification) -> NotificationPublic:
    """The customer's view of a notice."""
    return NotificationPublic(
        id=row.id,
        category=row.category,
        type=row.event_type,
        title=row.title,
        body=row.body,
        read=row.read_at is not None,
        created_at=row.created_at,
    )


async def preferences_of(
    session: AsyncSession, user_id: uuid.UUID
) -> NotificationPreference | None:
    """The user's stored preferences (None: all defaults)."""
    return await session.get(NotificationPreference, user_id)


async def find_notification(
    session: AsyncSession, event_id: int, user_id: uuid.UUID
) -> Notification | None:
    """The notice of an event for a user, if stored."""
    return (
        await session.execute(
            select(Notification).where(
                col(Notification.event_id) == event_id, col(Notification.user_id) == user_id
            )
        )
    ).scalar_one_or_none()


async def store_notification(session: AsyncSession, values: dict[str, Any]) -> Notification:
    """Insert a notice unless its (event, user) has one; returns the row that is stored."""
    await session.execute(
        insert(Notification)
        .values(**values)
        .on_conflict_do_nothing(constraint="ux_notifications_event_user")
    )
    row = await find_notification(session, values["event_id"], values["user_id"])
    assert row is not None
    return row


async def claim_delivery(
    session: AsyncSession, notification_id: uuid.UUID, channel: NotificationChannel
) -> bool:
    """Record a channel's delivery; False when it was recorded before (do not deliver again)."""
    inserted = await session.execute(
        insert(NotificationDelivery)
        .values(id=uuid.uuid4(), notification_id=notification_id, channel=channel.value)
        .on_conflict_do_nothing(constraint="ux_notification_deliveries_channel")
        .returning(col(NotificationDelivery.id))
    )
    return inserted.first() is not None


async def delivered(
    session: AsyncSession, notification_id: uuid.UUID, channel: NotificationChannel
) -> bool:
    """Whether a channel's delivery of a notice is recorded."""
    found = await session.execute(
        select(col(NotificationDelivery.id)).where(
            col(NotificationDelivery.notification_id) == notification_id,
            col(NotificationDelivery.channel) == channel.value,
        )
    )
    return found.first() is not None


async def push_notification(session: AsyncSession, row: Notification) -> bool:
    """Queue `notification.new` for the user's channel (once per notice): the outbox row and
    the delivery record commit with the caller's transaction. False if pushed before."""
    if not await claim_delivery(session, row.id, NotificationChannel.PUSH):
        return False
    session.add(
        OutboxEvent(
            topic=USER_EVENTS_TOPIC,
            type=NOTIFICATION_NEW,
            aggregate_id=row.id,
            user_id=row.user_id,
            payload=notification_public(row).model_dump(mode="json"),
        )
    )
    await session.flush()
    return True


async def is_own_transfer(session: AsyncSession, payload: dict[str, Any]) -> bool:
    """Whether a transfer credit came from another account of the same customer (the payment's
    own `payment.completed` notice covers it; "you received" would be noise)."""
    entry, owner = payload.get("journal_entry_id"), payload.get("user_id")
    if payload.get("kind") != "transfer" or not entry or not owner:
        return False
    found = await session.execute(
        select(col(Posting.id))
        .join(LedgerAccount, col(LedgerAccount.id) == col(Posting.account_id))
        .where(
            col(Posting.entry_id) == uuid.UUID(str(entry)),
            col(Posting.amount) < 0,
            col(LedgerAccount.owner_user_id) == uuid.UUID(str(owner)),
        )
    )
    return found.first() is not None


async def enriched_payload(session: AsyncSession, event: OutboxEvent) -> dict[str, Any]:
    """The event's payload, plus what its notice shows that the event does not carry (a
    payment's reference: the trigger's payload has ids, status and amount only)."""
    payload = dict(event.payload)
    if event.type.startswith("payment.") and "description" not in payload:
        payment = await session.get(Payment, event.aggregate_id)
        payload["description"] = payment.description if payment is not None else ""
    return payload
