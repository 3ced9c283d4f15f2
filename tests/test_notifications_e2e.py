"""End to end through the running outbox relay and the notifier feed: a transfer notifies the
sender (payment completed) and the receiver (money received); a login from a new device is a
security notice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.service import RPCError

from activities.events.relay import OutboxRelay
from activities.notifications.feed import NotificationFeed
from api.auth.sessions import SessionService
from api.services import Services
from cli.staff import change_role
from core.db import SessionFactory
from core.email import MemoryEmailBackend, OutgoingEmail
from core.settings import Settings
from models.notifications.tables import Notification
from temporal.handles import handle_for
from temporal.ids import notification_workflow_id
from tests import ledger_support
from tests.flows import password_step, register_customer
from tests.notifications_support import (
    eventually,
    notice_settings,
    notices,
    outbox_of,
    person,
    prefer,
)
from workflows.notification import NotificationWorkflow


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test queues, consumer group and workflow-id prefix."""
    return notice_settings(base_settings)


@pytest.fixture
async def feed(redis: Redis, temporal_client: Client, settings: Settings) -> AsyncIterator[None]:
    """The notifier feed running as in `vortex worker`."""
    stop = asyncio.Event()
    task = asyncio.create_task(NotificationFeed(redis, temporal_client, settings).run(stop))
    yield
    stop.set()
    await task


async def _titles(sessions: SessionFactory, user_id: uuid.UUID, count: int) -> list[str]:
    async def probe() -> list[Notification] | None:
        rows = await notices(sessions, user_id)
        return rows if len(rows) >= count else None

    return [n.title for n in await eventually(probe, f"{count} notices")]


async def _mail_to(outbox: MemoryEmailBackend, to: str) -> OutgoingEmail | None:
    return outbox.latest_to(to)


async def test_a_transfer_notifies_the_sender_and_the_receiver(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    relay: OutboxRelay,
    feed: None,
    outbox: MemoryEmailBackend,
) -> None:
    ada, bob = await person(services, "ada"), await person(services, "bob")
    source = await ledger_support.funded_account(sessions, ada.id, 10_000)
    target = await ledger_support.open_account(sessions, bob.id)

    sent = await api.post(
        "/api/payments/transfer",
        headers={**ada.headers, "Idempotency-Key": "rent"},
        json={
            "from_account_id": str(source),
            "to_account_number": target.number,
            "amount": "25.00",
            "currency": "EUR",
            "description": "Rent <March>",
        },
    )

    assert sent.status_code == 201, sent.text
    assert sorted(await _titles(sessions, ada.id, 2)) == [
        "Payment of 25.00 EUR completed",
        "You received 100.00 EUR",  # the funding
    ]
    assert await _titles(sessions, bob.id, 1) == ["You received 25.00 EUR"]
    [paid] = [n for n in await notices(sessions, ada.id) if n.event_type == "payment.completed"]
    assert paid.body == "Your payment of 25.00 EUR has been completed.\nReference: Rent <March>"
    to_bob = await eventually(lambda: _mail_to(outbox, bob.email), "bob's email")
    assert "Reference: Rent <March>" in to_bob.body
    assert to_bob.html is not None
    assert "Rent &lt;March&gt;" in to_bob.html


async def test_a_login_from_a_new_device_is_a_security_notice(
    api: httpx.AsyncClient,
    sessions: SessionFactory,
    relay: OutboxRelay,
    feed: None,
    outbox: MemoryEmailBackend,
) -> None:
    customer = await register_customer(api, outbox, "dana@example.com")
    firefox = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}

    codes = iter(customer.recovery_codes)  # TOTP allows only three logins a minute

    async def login(headers: dict[str, str]) -> None:
        challenge = await password_step(api, customer)
        response = await api.post(
            "/api/auth/login",
            headers=headers,
            json={"challenge_token": challenge, "recovery_code": next(codes)},
        )
        assert response.status_code == 200, response.text

    await login({})  # the device that registered: known
    await login(firefox)
    await login(firefox)  # known now

    events = await outbox_of(sessions, "security.login_new_device")
    assert [e.payload["device"] for e in events] == [firefox["User-Agent"]]
    assert events[0].user_id is not None
    assert await _titles(sessions, events[0].user_id, 1) == ["New login to your account"]

    async def mail() -> str | None:
        found = outbox.latest_to(customer.email)
        return found.subject if found and found.subject.startswith("New login") else None

    assert await eventually(mail, "the security email") == "New login to your account"


async def test_a_transfer_between_own_accounts_is_one_notice_not_two(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    relay: OutboxRelay,
    feed: None,
    temporal_client: Client,
    settings: Settings,
) -> None:
    ada = await person(services, "ada")
    main = await ledger_support.funded_account(sessions, ada.id, 10_000)
    savings = await ledger_support.open_account(sessions, ada.id, name="Savings")

    sent = await api.post(
        "/api/payments/transfer",
        headers={**ada.headers, "Idempotency-Key": "save"},
        json={
            "from_account_id": str(main),
            "to_account_id": str(savings.account_id),
            "amount": "10.00",
            "currency": "EUR",
        },
    )
    assert sent.status_code == 201, sent.text
    [credit] = [
        e
        for e in await outbox_of(sessions, "transaction.created")
        if (e.payload["kind"], e.payload["direction"]) == ("transfer", "credit")
    ]

    async def started() -> bool | None:  # the feed starts it when the relay has published it
        try:
            await temporal_client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            return None
        return True

    workflow_id = notification_workflow_id(
        int(credit.id or 0), ada.id, settings.notification_workflow_id_prefix
    )
    await eventually(started, "the credit's notification workflow")
    state = await handle_for(temporal_client, NotificationWorkflow.run, workflow_id).result()
    titles = await _titles(sessions, ada.id, 2)

    assert (state.status, state.reason) == ("skipped", "own-transfer")
    assert sorted(titles) == ["Payment of 10.00 EUR completed", "You received 100.00 EUR"]


async def test_a_staff_message_started_by_the_route_and_by_the_feed_is_delivered_once(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    relay: OutboxRelay,
    feed: None,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ops = await person(services, "ops")
    await change_role(settings, "grant", ops.email, "ops", "test")
    token = (await SessionService(services).issue_session(ops.id)).access_token
    ada = await person(services, "ada")
    await prefer(sessions, ada.id, channels={"announcements": {"email": True}})

    sent = await api.post(
        "/api/notifications/send",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "s1"},
        json={"user_id": str(ada.id), "title": "Hello", "body": "From the bank"},
    )
    assert sent.status_code == 202, sent.text
    [event] = await outbox_of(sessions, "staff.message")

    async def fed() -> bool | None:  # the relay published it and the feed read and acked it
        last = await services.redis.xrevrange("user.events", count=1)
        groups = await services.redis.xinfo_groups("user.events")
        ours = [g for g in groups if g["name"] == settings.notification_consumer_group]
        done = bool(last and ours and ours[0]["last-delivered-id"] == last[0][0])
        return (done and ours[0]["pending"] == 0) or None

    await eventually(fed, "the feed to read the staff message")
    state = await handle_for(
        temporal_client, NotificationWorkflow.run, sent.json()["workflow_id"]
    ).result()

    assert state.status == "delivered"
    assert [n.title for n in await notices(sessions, ada.id)] == ["Hello"]
    assert [m.subject for m in outbox.outbox if m.to == ada.email] == ["Hello"]
    assert event.id == sent.json()["event_id"]
