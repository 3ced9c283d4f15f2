"""The staff send: one outbox event per Idempotency-Key, then its NotificationWorkflow.

The event row, the send record (key -> event) and the audit entry commit together, so a retry
with the same key finds the first event and starts (or attaches to) the same workflow; the
feed would start it too once the relay publishes the event, under the same workflow id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.notifications.events import ANNOUNCEMENT, STAFF_MESSAGE, USER_EVENTS_TOPIC
from activities.notifications.feed import start_notification
from api.deps import Caller
from api.idempotency import key_digest, request_hash
from api.services import Services
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import User, UserStatus
from models.ledger.tables import OutboxEvent
from models.notifications.schemas import NotificationSendAccepted, NotificationSendBody
from models.notifications.tables import NotificationSend


@dataclass(frozen=True)
class SendOutcome:
    """The accepted send, and whether this request created it (False: a retry)."""

    accepted: NotificationSendAccepted
    created: bool


async def _existing(
    session: AsyncSession, staff_id: uuid.UUID, key: str, body_hash: str
) -> NotificationSend | None:
    row = (
        await session.execute(
            select(NotificationSend).where(
                col(NotificationSend.staff_user_id) == staff_id,
                col(NotificationSend.idempotency_key) == key,
            )
        )
    ).scalar_one_or_none()
    if row is not None and row.request_hash != body_hash:
        raise errors.IdempotencyKeyReused("this Idempotency-Key was used for another message")
    return row


async def _create(
    session: AsyncSession,
    staff: Caller,
    body: NotificationSendBody,
    key: str,
    body_hash: str,
    client: str,
) -> NotificationSend:
    if body.user_id is not None:
        user = await session.get(User, body.user_id)
        if user is None or user.status != UserStatus.ACTIVE:
            raise errors.NotFound("unknown user")
    send_id = uuid.uuid4()
    event = OutboxEvent(
        topic=USER_EVENTS_TOPIC,
        type=STAFF_MESSAGE if body.user_id else ANNOUNCEMENT,
        aggregate_id=send_id,
        user_id=body.user_id,
        payload={
            "id": str(send_id),
            "category": body.category.value,
            "title": body.title,
            "body": body.body,
            "created_at": utcnow().isoformat(),
        },
    )
    session.add(event)
    await session.flush()
    assert event.id is not None
    row = NotificationSend(
        id=send_id,
        staff_user_id=staff.id,
        idempotency_key=key,
        request_hash=body_hash,
        recipient_user_id=body.user_id,
        event_id=event.id,
    )
    session.add(row)
    await record_audit(
        session,
        "notification.staff_send",
        actor_user_id=staff.id,
        subject=str(send_id),
        client=client,
        details={"audience": body.audience, "user_id": body.user_id, "event_id": event.id},
    )
    return row


async def staff_send(
    services: Services,
    staff: Caller,
    body: NotificationSendBody,
    raw_key: str | None,
    client: str,
) -> SendOutcome:
    """Record the message once per key and start its delivery (a retry attaches)."""
    key = key_digest(raw_key)
    body_hash = request_hash(body.model_dump(mode="json"))
    created = False
    try:
        async with transaction(services.sessions) as session:
            row = await _existing(session, staff.id, key, body_hash)
            if row is None:
                row, created = (
                    await _create(session, staff, body, key, body_hash, client),
                    True,
                )
    except IntegrityError:  # a concurrent request with this key committed first
        async with services.reads() as session:
            row = await _existing(session, staff.id, key, body_hash)
        if row is None:
            raise
        created = False
    event_type = STAFF_MESSAGE if row.recipient_user_id else ANNOUNCEMENT
    workflow_id = await start_notification(
        services.temporal, services.settings, row.event_id, event_type, row.recipient_user_id
    )
    accepted = NotificationSendAccepted(
        id=row.id,
        audience="user" if row.recipient_user_id else "global",
        event_id=row.event_id,
        workflow_id=workflow_id,
    )
    return SendOutcome(accepted, created)
