"""Events reach NotificationWorkflow through the `notifier` feed and are delivered by the
preferences: in-app rows with their push event, emails on the external queue, exactly once."""

from __future__ import annotations

import uuid
from typing import cast

import httpx
import pytest
from redis.asyncio import Redis
from temporalio.client import Client

from activities import ledger
from activities.notifications.feed import NotificationFeed
from api.services import Services
from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend, OutgoingEmail
from core.settings import Settings
from models.identity.tables import User, UserStatus
from models.ledger.payloads import ExternalEntryInput
from models.ledger.tables import Direction
from models.notifications.payloads import NotificationState
from temporal.handles import handle_for
from temporal.ids import notification_workflow_id
from tests import ledger_support
from tests.notifications_support import (
    feed_once,
    notice_settings,
    notices,
    outbox_of,
    person,
    prefer,
    relay_outbox,
    republish,
)
from workflows.notification import NotificationWorkflow


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test queues, consumer group and workflow-id prefix."""
    return notice_settings(base_settings)


async def _deliver(redis: Redis, client: Client, settings: Settings) -> int:
    """Relay the outbox to the streams and let the feed start the workflows."""
    assert settings.database_url is not None
    published = await relay_outbox(settings.database_url, redis)
    await feed_once(redis, client, settings)
    return published


async def _finished(
    client: Client, settings: Settings, event_id: int, user: uuid.UUID
) -> NotificationState:
    handle = handle_for(
        client,
        NotificationWorkflow.run,
        notification_workflow_id(event_id, user, settings.notification_workflow_id_prefix),
    )
    return await handle.result()


def _mails(outbox: MemoryEmailBackend, to: str) -> list[OutgoingEmail]:
    return [m for m in outbox.outbox if m.to == to]


async def test_money_received_becomes_an_in_app_notice_a_push_and_an_email(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    redis: Redis,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ada = await person(services, "ada")
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 123_456)

    published = await _deliver(redis, temporal_client, settings)
    funding = next(iter(await outbox_of(sessions, "transaction.created")))
    state = await _finished(temporal_client, settings, int(funding.id or 0), ada.id)

    assert published >= 3  # account opened, balance, transaction (and more)
    assert (state.status, state.delivered) == ("delivered", ["in_app", "push", "email"])
    [row] = await notices(sessions, ada.id)
    assert (row.title, row.category, row.in_app) == ("You received 1,234.56 EUR", "payments", True)
    [mail] = _mails(outbox, ada.email)
    assert mail.subject == "You received 1,234.56 EUR"
    assert mail.body.startswith("Hello Ada,\n\n1,234.56 EUR arrived in your account")
    assert mail.html is not None
    assert "<h1" in mail.html
    assert "1,234.56 EUR" in mail.html
    [push] = await outbox_of(sessions, "notification.new")
    assert (push.topic, push.user_id, push.aggregate_id) == ("user.events", ada.id, row.id)
    assert push.payload["title"] == row.title
    assert push.payload["read"] is False
    listed = await api.get("/api/notifications", headers=ada.headers)
    assert [n["id"] for n in listed.json()["items"]] == [str(row.id)]
    assert listed.json()["unread_count"] == 1


async def test_a_category_switched_off_for_email_still_arrives_in_app(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    redis: Redis,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ada = await person(services, "ada")
    switched = await api.post(
        "/api/notifications/preferences",
        headers=ada.headers,
        json={"channels": {"payments": {"email": False, "push": False}}},
    )
    assert switched.status_code == 200, switched.text
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 5_000)

    await _deliver(redis, temporal_client, settings)
    [funding] = await outbox_of(sessions, "transaction.created")
    state = await _finished(temporal_client, settings, int(funding.id or 0), ada.id)

    assert state.status == "delivered"
    assert [n.title for n in await notices(sessions, ada.id)] == ["You received 50.00 EUR"]
    assert _mails(outbox, ada.email) == []
    assert await outbox_of(sessions, "notification.new") == []


async def test_in_app_switched_off_hides_the_notice_but_the_email_goes_out(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    redis: Redis,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ada = await person(services, "ada")
    await prefer(sessions, ada.id, channels={"payments": {"in_app": False}})
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 5_000)

    await _deliver(redis, temporal_client, settings)
    [funding] = await outbox_of(sessions, "transaction.created")
    await _finished(temporal_client, settings, int(funding.id or 0), ada.id)

    listed = await api.get("/api/notifications", headers=ada.headers)
    assert listed.json() == {"items": [], "next_cursor": None, "unread_count": 0}
    assert [m.subject for m in _mails(outbox, ada.email)] == ["You received 50.00 EUR"]


async def test_a_redelivered_event_is_notified_once(
    workers: object,
    services: Services,
    sessions: SessionFactory,
    redis: Redis,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ada = await person(services, "ada")
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 7_500)
    await _deliver(redis, temporal_client, settings)
    [funding] = await outbox_of(sessions, "transaction.created")
    await _finished(temporal_client, settings, int(funding.id or 0), ada.id)

    # The relay re-publishes after a crash (same event_id); a second consumer reads it too.
    await republish(redis, funding)
    handled = await feed_once(redis, temporal_client, settings)
    state = await _finished(temporal_client, settings, int(funding.id or 0), ada.id)

    assert handled == 1
    assert state.status == "delivered"
    assert len(await notices(sessions, ada.id)) == 1
    assert len(_mails(outbox, ada.email)) == 1
    assert len(await outbox_of(sessions, "notification.new")) == 1
    pending = await redis.xpending("transaction.events", settings.notification_consumer_group)
    assert pending["pending"] == 0  # everything acknowledged


async def test_a_large_card_payment_at_a_hostile_merchant_is_emailed_inert(
    workers: object,
    services: Services,
    sessions: SessionFactory,
    redis: Redis,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ada = await person(services, "ada")
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 200_000)
    for external_id, amount in (
        ("small", 1_000),
        ("large", settings.notification_large_card_minor),
    ):
        await ledger_support.run(
            sessions,
            ledger.record_external_transaction,
            ExternalEntryInput(
                account_id=account.account_id,
                external_id=external_id,
                amount=amount,
                currency="EUR",
                direction=Direction.DEBIT,
                kind="card",
                merchant="<img src=x onerror=alert(1)>{{ 7*7 }}",
            ),
        )

    await _deliver(redis, temporal_client, settings)
    funding, small, large = await outbox_of(sessions, "transaction.created")
    assert small.payload["amount"] == 1_000  # below the threshold: no workflow at all
    for event in (funding, large):  # concurrent workflows: wait for each
        await _finished(temporal_client, settings, int(event.id or 0), ada.id)

    titles = sorted(n.title for n in await notices(sessions, ada.id))
    assert titles == ["Card payment of 500.00 EUR", "You received 2,000.00 EUR"]  # not the small
    [mail] = [m for m in _mails(outbox, ada.email) if m.subject.startswith("Card")]
    assert mail.subject == "Card payment of 500.00 EUR"
    assert mail.html is not None
    assert "<img" not in mail.html
    assert "&lt;img src=x onerror=alert(1)&gt;{{ 7*7 }}" in mail.html
    assert "49" not in mail.html


async def test_a_payment_event_for_an_inactive_user_is_skipped(
    workers: object,
    services: Services,
    sessions: SessionFactory,
    redis: Redis,
    temporal_client: Client,
    settings: Settings,
) -> None:
    ada = await person(services, "ada")
    async with transaction(sessions) as session:
        user = await session.get(User, ada.id)
        assert user is not None
        user.status = UserStatus.DISABLED
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 5_000)

    await _deliver(redis, temporal_client, settings)
    [funding] = await outbox_of(sessions, "transaction.created")
    state = await _finished(temporal_client, settings, int(funding.id or 0), ada.id)

    assert (state.status, state.reason) == ("skipped", "user-inactive")
    assert await notices(sessions, ada.id) == []


async def test_an_entry_a_crashed_consumer_left_pending_is_claimed_and_delivered(
    workers: object,
    services: Services,
    sessions: SessionFactory,
    redis: Redis,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ada = await person(services, "ada")
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 4_200)
    assert settings.database_url is not None
    await relay_outbox(settings.database_url, redis)
    group = settings.notification_consumer_group
    feed = NotificationFeed(
        redis, temporal_client, settings.model_copy(update={"notification_claim_idle_ms": 0})
    )
    await feed.ensure_groups()
    # A consumer takes every entry and dies before handling (or acknowledging) any.
    await redis.xreadgroup(group, "crashed", {"transaction.events": ">"})
    assert (await redis.xpending("transaction.events", group))["pending"] > 0

    read = await feed.read_once(block_ms=None)
    claimed = await feed.claim_stale()
    [funding] = await outbox_of(sessions, "transaction.created")
    state = await _finished(temporal_client, settings, int(funding.id or 0), ada.id)

    assert read == 0  # nothing new: all of it was delivered to the crashed consumer
    assert claimed > 0
    assert state.status == "delivered"
    assert [m.subject for m in _mails(outbox, ada.email)] == ["You received 42.00 EUR"]
    assert (await redis.xpending("transaction.events", group))["pending"] == 0


class _TemporalDown:
    """A client whose every start fails as when the Temporal frontend cannot be reached."""

    async def start_workflow(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("temporal unreachable")


async def test_an_entry_whose_start_failed_stays_pending_for_a_later_claim(
    services: Services, sessions: SessionFactory, redis: Redis, settings: Settings
) -> None:
    ada = await person(services, "ada")
    account = await ledger_support.open_account(sessions, ada.id)
    await ledger_support.fund(sessions, account.account_id, 4_200)
    assert settings.database_url is not None
    await relay_outbox(settings.database_url, redis)
    feed = NotificationFeed(redis, cast(Client, _TemporalDown()), settings)
    await feed.ensure_groups()

    handled = await feed.read_once(block_ms=None)
    pending = await redis.xpending("transaction.events", settings.notification_consumer_group)

    assert handled >= 3  # the funding's entries; the ones that deserve nothing are acknowledged
    assert pending["pending"] == 1  # the money received, kept for XAUTOCLAIM
