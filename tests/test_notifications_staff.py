"""The staff send: 404 for anyone without a sending role (like an unknown route), one user or
everyone for ops, one message per Idempotency-Key; roles come from `vortex staff`."""

from __future__ import annotations

import uuid

import httpx
import pytest
from redis.asyncio import Redis
from temporalio.client import Client

from api.auth.sessions import SessionService
from api.services import Services
from cli.staff import change_role
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.audit import verify_audit_chain
from models.notifications.payloads import NotificationState
from temporal.handles import handle_for
from tests.notifications_support import (
    Person,
    notice_settings,
    notices,
    outbox_of,
    person,
    prefer,
)
from workflows.notification import NotificationWorkflow


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test queues and workflow-id prefix."""
    return notice_settings(base_settings)


async def _staff(services: Services, settings: Settings, role: str) -> Person:
    """A user granted `role` by the CLI, logged in afresh (the role is in the token)."""
    user = await person(services, role)
    assert await change_role(settings, "grant", user.email, role, "test") == (
        f"user {user.id}: {role} granted"
    )
    pair = await SessionService(services).issue_session(user.id)
    user.headers = {"Authorization": f"Bearer {pair.access_token}"}
    return user


def _body(response: httpx.Response) -> dict[str, object]:
    """A problem without what differs per request (`instance`, the path; `request_id`)."""
    return {k: v for k, v in response.json().items() if k not in ("instance", "request_id")}


def _send(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def _result(client: Client, workflow_id: str) -> NotificationState:
    handle = handle_for(client, NotificationWorkflow.run, workflow_id)
    return await handle.result()


async def test_a_customer_on_the_staff_send_gets_the_404_of_an_unknown_route(
    api: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    ada = await person(services, "ada")
    compliance = await _staff(services, settings, "compliance")
    body = {"user_id": str(ada.id), "title": "Hi", "body": "Hello"}

    as_customer = await api.post(
        "/api/notifications/send", headers=_send(ada.headers, "k1"), json=body
    )
    as_compliance = await api.post(
        "/api/notifications/send", headers=_send(compliance.headers, "k1"), json=body
    )
    unknown = await api.post("/api/notifications/nothing-here/at-all", headers=ada.headers)

    assert as_customer.status_code == as_compliance.status_code == unknown.status_code == 404
    assert _body(as_customer) == _body(as_compliance) == _body(unknown)


async def test_ops_sends_one_customer_a_message_once_per_key(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ops = await _staff(services, settings, "ops")
    ada = await person(services, "ada")
    body = {"user_id": str(ada.id), "category": "security", "title": "Card", "body": "<b>Hi</b>"}

    sent = await api.post("/api/notifications/send", headers=_send(ops.headers, "m1"), json=body)
    state = await _result(temporal_client, sent.json()["workflow_id"])
    retry = await api.post("/api/notifications/send", headers=_send(ops.headers, "m1"), json=body)
    reused = await api.post(
        "/api/notifications/send",
        headers=_send(ops.headers, "m1"),
        json={**body, "body": "something else"},
    )
    listed = (await api.get("/api/notifications", headers=ada.headers)).json()

    assert sent.status_code == 202, sent.text
    assert state.status == "delivered"
    assert (retry.status_code, retry.json()) == (200, sent.json())
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    assert [(n["title"], n["body"], n["category"]) for n in listed["items"]] == [
        ("Card", "<b>Hi</b>", "security")
    ]
    [mail] = [m for m in outbox.outbox if m.to == ada.email]  # security: email is always on
    assert mail.html is not None
    assert "&lt;b&gt;Hi&lt;/b&gt;" in mail.html
    assert len(await outbox_of(sessions, "staff.message")) == 1
    async with sessions() as session:
        assert await verify_audit_chain(session) >= 2  # the grant and the send


async def test_a_global_announcement_reaches_every_customer_who_keeps_them_on(
    api: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    temporal_client: Client,
    settings: Settings,
    outbox: MemoryEmailBackend,
) -> None:
    ops = await _staff(services, settings, "ops")
    ada, bob, cleo, dora = [await person(services, n) for n in ("ada", "bob", "cleo", "dora")]
    await prefer(sessions, bob.id, channels={"announcements": {"in_app": False}})
    await prefer(sessions, cleo.id, locale="de", channels={"announcements": {"email": True}})
    await prefer(sessions, dora.id, channels={"announcements": {"in_app": False, "email": True}})
    body = {"audience": "global", "title": "Maintenance", "body": "Sunday 02:00"}

    sent = await api.post("/api/notifications/send", headers=_send(ops.headers, "a1"), json=body)
    state = await _result(temporal_client, sent.json()["workflow_id"])
    for user in (cleo, dora):  # the email-only children
        child = sent.json()["workflow_id"].removesuffix("global") + str(user.id)
        assert (await _result(temporal_client, child)).status == "delivered"
    listed = (await api.get("/api/notifications", headers=dora.headers)).json()

    assert sent.status_code == 202, sent.text
    assert sent.json()["audience"] == "global"
    assert state.recipients == 4  # ada, cleo, dora (email only) and the ops user; not bob
    assert state.emails_started == 2
    assert [n.title for n in await notices(sessions, ada.id)] == ["Maintenance"]
    assert await notices(sessions, bob.id) == []
    assert [n.locale for n in await notices(sessions, cleo.id)] == ["de"]
    assert listed["items"] == []  # dora: in the app off
    assert sorted(m.to for m in outbox.outbox) == sorted([cleo.email, dora.email])
    [to_cleo] = [m for m in outbox.outbox if m.to == cleo.email]
    assert to_cleo.body.startswith("Hallo Cleo,")
    assert await outbox_of(sessions, "notification.new") == []  # the broadcast is the push
    [event] = await outbox_of(sessions, "announcement.new")
    assert (event.topic, event.user_id) == ("user.events", None)
    assert event.payload["title"] == "Maintenance"


async def test_a_revoked_role_stops_working_before_the_token_expires(
    api: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    ops = await _staff(services, settings, "ops")
    ada = await person(services, "ada")
    body = {"user_id": str(ada.id), "title": "Hi", "body": "Hello"}

    revoked = await change_role(settings, "revoke", ops.email, "ops", "left the team")
    refused = await api.post("/api/notifications/send", headers=_send(ops.headers, "r1"), json=body)

    assert revoked == f"user {ops.id}: ops revoked"
    assert refused.status_code == 404


async def test_a_send_to_an_unknown_user_or_with_a_bad_audience_is_refused(
    api: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    ops = await _staff(services, settings, "ops")

    unknown = await api.post(
        "/api/notifications/send",
        headers=_send(ops.headers, "u1"),
        json={"user_id": str(uuid.uuid4()), "title": "Hi", "body": "Hello"},
    )
    mixed = await api.post(
        "/api/notifications/send",
        headers=_send(ops.headers, "u2"),
        json={"audience": "global", "user_id": str(uuid.uuid4()), "title": "Hi", "body": "x"},
    )
    keyless = await api.post(
        "/api/notifications/send",
        headers=ops.headers,
        json={"audience": "global", "title": "Hi", "body": "x"},
    )

    assert unknown.status_code == 404
    assert mixed.status_code == 422
    assert keyless.status_code == 400


async def test_staff_roles_ride_in_the_access_token(
    services: Services, settings: Settings, redis: Redis
) -> None:
    ops = await _staff(services, settings, "ops")
    token = ops.headers["Authorization"].removeprefix("Bearer ")

    claims = services.tokens.verify(token, "access")

    assert claims.extra["roles"] == ["ops"]
