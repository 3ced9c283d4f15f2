"""Helpers of the notification tests: users with tokens, the relay's publishing step, a
re-publish, the feed, and reading what the workflows wrote."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from activities.events.relay import OutboxRelay
from activities.events.streams import entry_fields
from activities.notifications.feed import NotificationFeed
from api.services import Services
from core.db import SessionFactory, asyncpg_dsn, transaction
from core.settings import Settings
from models.identity.tables import User
from models.ledger.tables import OutboxEvent
from models.notifications.tables import Notification, NotificationCategory, NotificationPreference
from tests import ledger_support

T = TypeVar("T")


def notice_settings(base: Settings) -> Settings:
    """Per-test queues, and a workflow-id prefix of its own: outbox ids restart every test."""
    suffix = uuid.uuid4().hex[:8]
    return base.model_copy(
        update={
            "task_queue": f"main-{suffix}",
            "external_task_queue": f"external-{suffix}",
            "notification_workflow_id_prefix": f"t{suffix}-",
            "notification_consumer_group": f"notifier-{suffix}",
            "notification_block_ms": 50,
        }
    )


@dataclass
class Person:
    """A user with an access token."""

    id: uuid.UUID
    email: str
    headers: dict[str, str]


async def person(services: Services, name: str = "ada", **token_claims: Any) -> Person:
    """An active user (no MFA flow: a token is minted directly) and its auth header."""
    user_id = await ledger_support.new_user(services.sessions, name)
    async with services.sessions() as session:
        user = await session.get(User, user_id)
    assert user is not None
    token, _ = services.tokens.issue(user_id, "access", 900, sid=str(uuid.uuid4()), **token_claims)
    return Person(user_id, user.email, {"Authorization": f"Bearer {token}"})


async def relay_outbox(database_url: str, redis: Redis) -> int:
    """Publish every unpublished outbox row now, with the real relay's batch step (the
    `relay` fixture runs the whole relay in the background instead). Returns the count."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        relay, total = OutboxRelay(asyncpg_dsn(database_url), redis), 0
        while published := await relay.publish_batch(conn):
            total += published
        return total
    finally:
        await conn.close()


async def republish(redis: Redis, row: OutboxEvent) -> None:
    """The entry a relay writes again after a crash: the same event_id, a new stream entry."""
    fields = entry_fields(
        int(row.id or 0),
        row.type,
        str(row.aggregate_id),
        str(row.user_id) if row.user_id else None,
        json.dumps(row.payload),
        row.created_at,
    )
    await redis.xadd(row.topic, fields)  # type: ignore[arg-type]


async def feed_once(redis: Redis, client: Client, settings: Settings) -> int:
    """Let a fresh feed consumer read what is there once; returns how many entries it handled."""
    feed = NotificationFeed(redis, client, settings)
    await feed.ensure_groups()
    return await feed.read_once(block_ms=None)


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll `probe` until it answers something (workflows run in the background)."""
    for _ in range(200):
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def notices(sessions: SessionFactory, user_id: uuid.UUID) -> list[Notification]:
    """Every notification row of a user (hidden and deleted ones too), oldest first."""
    async with sessions() as session:
        rows = await session.execute(
            select(Notification)
            .where(col(Notification.user_id) == user_id)
            .order_by(col(Notification.created_at), col(Notification.id))
        )
        return list(rows.scalars())


async def outbox_of(sessions: SessionFactory, type_: str) -> list[OutboxEvent]:
    """Outbox rows of one type, oldest first."""
    async with sessions() as session:
        rows = await session.execute(
            select(OutboxEvent).where(col(OutboxEvent.type) == type_).order_by(col(OutboxEvent.id))
        )
        return list(rows.scalars())


async def prefer(sessions: SessionFactory, user_id: uuid.UUID, **values: Any) -> None:
    """Store preferences directly (the API tests cover the route)."""
    async with transaction(sessions) as session:
        session.add(NotificationPreference(user_id=user_id, **values))


async def add_notices(sessions: SessionFactory, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """`count` in-app notices for a user, one second apart (newest last)."""
    ids: list[uuid.UUID] = []
    async with transaction(sessions) as session:
        for n in range(count):
            row = Notification(
                user_id=user_id,
                event_id=10_000 + n,
                event_type="payment.completed",
                category=NotificationCategory.PAYMENTS,
                template="payment.completed",
                locale="en",
                title=f"notice {n}",
                body="body",
                in_app=True,
                created_at=datetime.fromtimestamp(1_800_000_000 + n, tz=UTC),
            )
            session.add(row)
            ids.append(row.id)
    return ids
