"""Known devices: a login from a device the user has not used before raises a security notice.

A device is a keyed digest of its User-Agent header. That is a weak identity (a browser update
changes it; two identical phones share it), chosen because it needs no client change; a signed
device cookie would be stronger and can replace the fingerprint later without a new table.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.notifications.events import LOGIN_NEW_DEVICE, USER_EVENTS_TOPIC
from core.crypto import Crypto
from models.base import utcnow
from models.identity.tables import KnownDevice
from models.ledger.tables import OutboxEvent
from models.security.tables import LoginSession
from models.text import scrub


def device_fingerprint(crypto: Crypto, user_agent: str) -> str:
    """The stored identity of a device (no User-Agent string is kept)."""
    return crypto.digest("device", " ".join(user_agent.split()).lower())


async def note_device(
    session: AsyncSession,
    crypto: Crypto,
    user_id: uuid.UUID,
    user_agent: str,
    client: str,
    *,
    notify: bool,
) -> bool:
    """Remember the device (in the caller's transaction); when it is new and the user has
    logged in from another device before, write `security.login_new_device` to the outbox.
    Returns whether the device was new."""
    now = utcnow()
    had_devices = await session.scalar(
        select(func.count()).select_from(KnownDevice).where(col(KnownDevice.user_id) == user_id)
    )
    inserted = await session.execute(
        insert(KnownDevice)
        .values(
            user_id=user_id,
            fingerprint=device_fingerprint(crypto, user_agent),
            first_seen_at=now,
            last_seen_at=now,
        )
        .on_conflict_do_nothing()
        .returning(col(KnownDevice.fingerprint))
    )
    new = inserted.first() is not None
    if new and notify and had_devices:
        session.add(
            OutboxEvent(
                topic=USER_EVENTS_TOPIC,
                type=LOGIN_NEW_DEVICE,
                aggregate_id=user_id,
                user_id=user_id,
                payload={
                    "user_id": str(user_id),
                    "device": scrub(user_agent, 120) or "unknown device",
                    "client": scrub(client, 100),
                    "at": now.isoformat(),
                },
            )
        )
    return new


async def record_session(
    session: AsyncSession, user_id: uuid.UUID, family: uuid.UUID, user_agent: str, client: str
) -> None:
    """Remember which device opened a login session (shown by `GET /api/auth/sessions`)."""
    await session.execute(
        insert(LoginSession)
        .values(
            family_id=family,
            user_id=user_id,
            device=scrub(user_agent, 120) or "unknown device",
            client=scrub(client, 100) or "unknown",
        )
        .on_conflict_do_nothing()
    )
