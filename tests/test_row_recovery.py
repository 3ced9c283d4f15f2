"""Links and registrations are never stranded: the `reconcile-rows` run starts a pending link
whose workflow never started (or expires it once its window has passed), fails a link or a
registration whose workflow ended unfinished, closes a registration that never got its
workflow (freeing the email), and a second run changes nothing."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.audit import AuditEvent
from models.base import utcnow
from models.identity.tables import Registration, RegistrationStatus, User
from models.linking.tables import LinkedAccount
from models.recovery.payloads import ReconcileRowsInput, ReconcileRowsResult
from temporal.ids import link_account_workflow_id, registration_workflow_id
from tests.flows import Customer, register_customer, start_registration
from tests.payment_support import GOOD_IBAN
from tests.recovery_support import api_with, unreachable_temporal
from workflows.reconcile_rows import ReconcileRowsWorkflow

LINK = {"iban": GOOD_IBAN, "holder_name": "Alice Example"}


@pytest.fixture
async def alice(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A customer."""
    return await register_customer(api, outbox, "alice@example.com")


async def _reconcile(client: Client, settings: Settings, grace: float = 0.0) -> ReconcileRowsResult:
    """One ReconcileRowsWorkflow run on the test's task queue (what the schedule starts)."""
    return await client.execute_workflow(
        ReconcileRowsWorkflow.run,
        ReconcileRowsInput(grace_seconds=grace),
        id=f"test-reconcile-rows-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )


async def _main_account(api: httpx.AsyncClient, who: Customer) -> str:
    return str((await api.get("/api/accounts", headers=who.auth)).json()["items"][0]["id"])


async def _audits(sessions: SessionFactory, action: str, subject: str) -> list[AuditEvent]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent).where(
                col(AuditEvent.action) == action, col(AuditEvent.subject) == subject
            )
        )
        return list(rows.scalars())


async def _workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(workflow_id).describe()).status


async def _age(sessions: SessionFactory, link_id: uuid.UUID, by: timedelta) -> None:
    """Make a link look older (as if its request was made `by` ago)."""
    async with transaction(sessions) as session:
        link = await session.get(LinkedAccount, link_id)
        assert link is not None
        link.created_at -= by


async def test_a_link_made_while_temporal_is_down_stays_pending_and_the_run_starts_it(
    api: httpx.AsyncClient,
    alice: Customer,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    account = await _main_account(api, alice)
    async with api_with(settings, await unreachable_temporal()) as down:
        refused = await down.post(f"/api/accounts/{account}/link", headers=alice.auth, json=LINK)
    listed = (await api.get(f"/api/accounts/{account}/links", headers=alice.auth)).json()["items"]
    assert refused.status_code == 503, refused.text
    assert [link["status"] for link in listed] == ["pending_confirmation"]
    link_id = uuid.UUID(listed[0]["id"])
    await _age(sessions, link_id, timedelta(days=1))

    first = await _reconcile(temporal_client, settings)
    again = await _reconcile(temporal_client, settings)

    assert (first.started["link"], first.closed["link"]) == (1, 0)
    assert (again.started["link"], again.closed["link"]) == (0, 0)
    workflow_id = link_account_workflow_id(link_id)
    assert await _workflow_status(temporal_client, workflow_id) == WorkflowExecutionStatus.RUNNING
    view = (await api.get(f"/api/accounts/{account}/links/{link_id}", headers=alice.auth)).json()
    assert view["source"] == "workflow"
    assert view["status"] == "pending_confirmation"
    # The confirmation window counts from the request, not from the late start.
    window = timedelta(days=settings.link_confirmation_days)
    expires_at = utcnow() + window - timedelta(days=1)
    assert abs((datetime.fromisoformat(view["expires_at"]) - expires_at).total_seconds()) < 60


async def test_a_link_without_a_workflow_past_its_window_is_expired_and_nothing_is_sent(
    api: httpx.AsyncClient,
    alice: Customer,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    account = await _main_account(api, alice)
    async with api_with(settings, await unreachable_temporal()) as down:
        refused = await down.post(f"/api/accounts/{account}/link", headers=alice.auth, json=LINK)
    assert refused.status_code == 503
    async with sessions() as session:
        link_id = await session.scalar(select(col(LinkedAccount.id)))
    assert link_id is not None
    await _age(sessions, link_id, timedelta(days=settings.link_confirmation_days))

    first = await _reconcile(temporal_client, settings)
    again = await _reconcile(temporal_client, settings)

    assert (first.started["link"], first.closed["link"]) == (0, 1)
    assert (again.started["link"], again.closed["link"]) == (0, 0)
    view = await api.get(f"/api/accounts/{account}/links/{link_id}", headers=alice.auth)
    assert view.json()["status"] == "expired"
    with pytest.raises(RPCError):  # never started
        await temporal_client.get_workflow_handle(link_account_workflow_id(link_id)).describe()
    [audit] = await _audits(sessions, "link.reconciled", str(link_id))
    assert audit.details["reason"].startswith("its workflow never started")


async def test_a_link_whose_workflow_was_terminated_is_failed_once(
    api: httpx.AsyncClient,
    alice: Customer,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    account = await _main_account(api, alice)
    started = await api.post(f"/api/accounts/{account}/link", headers=alice.auth, json=LINK)
    assert started.status_code == 202, started.text
    link_id = started.json()["linked_account_id"]
    workflow_id = link_account_workflow_id(uuid.UUID(link_id))
    await temporal_client.get_workflow_handle(workflow_id).terminate(reason="ops test")

    young = await _reconcile(temporal_client, settings, grace=3600)
    first = await _reconcile(temporal_client, settings)
    again = await _reconcile(temporal_client, settings)

    assert young.checked["link"] == 0  # within the grace period: left to its request
    assert (first.started["link"], first.closed["link"]) == (0, 1)
    assert (again.checked["link"], again.closed["link"]) == (0, 0)
    view = await api.get(f"/api/accounts/{account}/links/{link_id}", headers=alice.auth)
    assert view.json()["status"] == "failed"
    [audit] = await _audits(sessions, "link.reconciled", link_id)
    assert audit.details["reason"] == "its workflow was terminated before it finished"


async def _pending_sign_up(sessions: SessionFactory, email: str) -> uuid.UUID:
    """A registration committed by a request that died before starting its workflow."""
    user_id, registration_id = uuid.uuid4(), uuid.uuid4()
    async with transaction(sessions) as session:
        session.add(
            User(
                id=user_id,
                email=email,
                first_name="Bob",
                last_name="Builder",
                password_hash="not-a-real-hash",
            )
        )
        await session.flush()
        session.add(Registration(id=registration_id, user_id=user_id))
    return registration_id


async def _users(sessions: SessionFactory, email: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(User).where(col(User.email) == email)
        )
    return int(count or 0)


async def test_a_registration_that_never_got_its_workflow_is_failed_and_frees_the_email(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    registration_id = await _pending_sign_up(sessions, "bob@example.com")

    first = await _reconcile(temporal_client, settings)
    again = await _reconcile(temporal_client, settings)
    state = await api.get(f"/api/auth/registrations/{registration_id}")
    users_after = await _users(sessions, "bob@example.com")
    fresh = await start_registration(api, "bob@example.com")

    assert (first.checked["registration"], first.closed["registration"]) == (1, 1)
    assert (again.checked["registration"], again.closed["registration"]) == (0, 0)
    assert state.json()["status"] == "failed"
    assert users_after == 0
    [audit] = await _audits(sessions, "registration.reconciled", str(registration_id))
    assert audit.details["reason"].startswith("its workflow never started")
    with pytest.raises(RPCError):  # closed, not started: nobody knows its id
        await temporal_client.get_workflow_handle(
            registration_workflow_id(registration_id)
        ).describe()
    assert await _users(sessions, "bob@example.com") == 1  # a real sign-up, not a decoy
    assert fresh != str(registration_id)


async def test_a_registration_whose_workflow_was_terminated_is_failed_once(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    registration_id = await start_registration(api, "carol@example.com")
    workflow_id = registration_workflow_id(uuid.UUID(registration_id))
    await temporal_client.get_workflow_handle(workflow_id).terminate(reason="ops test")

    first = await _reconcile(temporal_client, settings)
    again = await _reconcile(temporal_client, settings)

    assert first.closed["registration"] == 1
    assert (again.checked["registration"], again.closed["registration"]) == (0, 0)
    async with sessions() as session:
        row = await session.get(Registration, uuid.UUID(registration_id))
    assert row is not None
    assert (row.status, row.user_id) == (RegistrationStatus.FAILED, None)
    assert await _users(sessions, "carol@example.com") == 0
    [audit] = await _audits(sessions, "registration.reconciled", registration_id)
    assert audit.details["reason"] == "its workflow was terminated before it finished"
