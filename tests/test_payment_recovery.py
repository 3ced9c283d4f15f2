"""Transfers are never stranded or wedged: a row whose workflow could not start is started by
the reconciler; a terminated TransferWorkflow leaves a payment that every route settles from
its row; a dependency that is down is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.ledger.verify import verify_ledger
from activities.payments import PaymentActivities, transfer_key
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.audit import AuditEvent
from models.ledger.payloads import LedgerTransferInput
from models.ledger.tables import JournalEntry
from models.payments.tables import Payment, PaymentStatus
from temporal.ids import transfer_workflow_id
from tests.flows import Customer, available_minor, fund, register_customer
from tests.rail_support import eventually
from tests.recovery_support import (
    PROBLEM,
    api_with,
    closed_address,
    owner_of,
    run_reconciler,
    unreachable_temporal,
)


@pytest.fixture
async def alice(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A customer."""
    return await register_customer(api, outbox, "alice@example.com")


async def _accounts(
    api: httpx.AsyncClient, who: Customer, sessions: SessionFactory
) -> tuple[str, str]:
    """The customer's main account (funded with 100.00) and a new savings account."""
    main = (await api.get("/api/accounts", headers=who.auth)).json()["items"][0]["id"]
    await fund(sessions, main, 10_000, "EUR")
    savings = await api.post(
        "/api/accounts", headers=who.auth, json={"currency": "EUR", "name": "Savings"}
    )
    assert savings.status_code == 201, savings.text
    return main, savings.json()["id"]


def _body(source: str, dest: str, **extra: Any) -> dict[str, Any]:
    return {
        "from_account_id": source,
        "to_account_id": dest,
        "amount": "12.00",
        "currency": "EUR",
        **extra,
    }


async def _resolutions(sessions: SessionFactory, payment_id: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                col(AuditEvent.action) == "payment.resolved", col(AuditEvent.subject) == payment_id
            )
        )
    return int(count or 0)


async def _scheduled_then_terminated(
    api: httpx.AsyncClient, who: Customer, temporal_client: Client, body: dict[str, Any]
) -> dict[str, Any]:
    """A transfer scheduled for tomorrow whose workflow an operator terminated."""
    headers = who.auth | {"Idempotency-Key": "scheduled-1"}
    scheduled = await api.post("/api/payments/transfer", headers=headers, json=body)
    assert scheduled.status_code == 202, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    payment_id = uuid.UUID(scheduled.json()["id"])
    await temporal_client.get_workflow_handle(transfer_workflow_id(payment_id)).terminate(
        reason="ops test"
    )
    return dict(scheduled.json())


def _tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


@dataclass(frozen=True)
class Terminated:
    """A transfer scheduled for tomorrow whose workflow was terminated, and its request."""

    source: str
    dest: str
    body: dict[str, Any]
    payment: dict[str, Any]


@pytest.fixture
async def terminated(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory, temporal_client: Client
) -> Terminated:
    """Alice's scheduled transfer of 12.00 to her savings, its workflow terminated by ops."""
    source, dest = await _accounts(api, alice, sessions)
    body = _body(source, dest, execute_at=_tomorrow())
    scheduled = await _scheduled_then_terminated(api, alice, temporal_client, body)
    return Terminated(source, dest, body, scheduled)


async def test_a_transfer_made_while_temporal_is_down_is_a_503_then_completed_by_the_reconciler(
    api: httpx.AsyncClient,
    alice: Customer,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    source, dest = await _accounts(api, alice, sessions)
    headers = alice.auth | {"Idempotency-Key": "while-down"}
    async with api_with(settings, await unreachable_temporal()) as down:
        refused = await down.post(
            "/api/payments/transfer", headers=headers, json=_body(source, dest)
        )
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == PROBLEM
    assert refused.headers["retry-after"] == str(settings.unavailable_retry_after_seconds)
    problem = refused.json()
    assert problem["dependency"] == "temporal"
    payment_id = problem["payment_id"]
    stranded = await api.get(f"/api/payments/{payment_id}", headers=alice.auth)
    assert stranded.json()["status"] == "processing"

    first = await run_reconciler(temporal_client, settings)

    async def completed() -> dict[str, Any] | None:
        row = (await api.get(f"/api/payments/{payment_id}", headers=alice.auth)).json()
        return dict(row) if row["status"] == "completed" else None

    await eventually(completed, max_wait=15, interval=0.05)
    again = await run_reconciler(temporal_client, settings)
    retry = await api.post("/api/payments/transfer", headers=headers, json=_body(source, dest))
    assert (first.started, first.resolved) == (1, 0)
    assert (again.started, again.resolved) == (0, 0)
    assert retry.status_code == 200
    assert (retry.json()["id"], retry.json()["status"]) == (payment_id, "completed")
    assert await available_minor(api, alice, source) == 10_000 - 1_200
    assert await available_minor(api, alice, dest) == 1_200
    assert (await verify_ledger(sessions)).ok


async def test_a_row_younger_than_the_grace_period_is_left_to_its_request(
    api: httpx.AsyncClient,
    alice: Customer,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    source, dest = await _accounts(api, alice, sessions)
    headers = alice.auth | {"Idempotency-Key": "young"}
    async with api_with(settings, await unreachable_temporal()) as down:
        refused = await down.post(
            "/api/payments/transfer", headers=headers, json=_body(source, dest)
        )

    result = await run_reconciler(temporal_client, settings, grace_seconds=3600)

    assert refused.status_code == 503
    assert (result.checked, result.started) == (0, 0)
    row = await api.get(f"/api/payments/{refused.json()['payment_id']}", headers=alice.auth)
    assert row.json()["status"] == "processing"


async def test_a_retry_of_a_terminated_transfer_answers_failed_with_the_reason(
    api: httpx.AsyncClient,
    alice: Customer,
    terminated: Terminated,
    sessions: SessionFactory,
) -> None:
    source, body, scheduled = terminated.source, terminated.body, terminated.payment
    headers = alice.auth | {"Idempotency-Key": "scheduled-1"}

    retry = await api.post("/api/payments/transfer", headers=headers, json=body)
    status = await api.get(scheduled["status_url"], headers=alice.auth)
    cancel = await api.post(f"/api/payments/{scheduled['id']}/cancel", headers=alice.auth)
    again = await api.post("/api/payments/transfer", headers=headers, json=body)

    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "failed"
    assert "terminated" in retry.json()["failure_reason"]
    assert status.json()["status"] == "failed"
    assert status.json()["source"] == "database"
    assert cancel.status_code == 409
    assert "failed" in cancel.json()["detail"]
    assert again.json()["status"] == "failed"
    assert await available_minor(api, alice, source) == 10_000
    assert await _resolutions(sessions, scheduled["id"]) == 1


async def test_the_status_of_a_terminated_transfer_is_read_from_its_settled_row(
    api: httpx.AsyncClient,
    alice: Customer,
    terminated: Terminated,
) -> None:
    scheduled = terminated.payment

    status = await api.get(scheduled["status_url"], headers=alice.auth)
    row = await api.get(f"/api/payments/{scheduled['id']}", headers=alice.auth)

    assert status.json()["status"] == "failed"
    assert "terminated" in status.json()["failure_reason"]
    assert row.json()["status"] == "failed"


async def test_cancelling_a_terminated_scheduled_transfer_cancels_it(
    api: httpx.AsyncClient,
    alice: Customer,
    terminated: Terminated,
    sessions: SessionFactory,
) -> None:
    source, body, scheduled = terminated.source, terminated.body, terminated.payment

    cancel = await api.post(f"/api/payments/{scheduled['id']}/cancel", headers=alice.auth)
    twice = await api.post(f"/api/payments/{scheduled['id']}/cancel", headers=alice.auth)
    retry = await api.post(
        "/api/payments/transfer",
        headers=alice.auth | {"Idempotency-Key": "scheduled-1"},
        json=body,
    )

    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] == "cancelled"
    assert twice.status_code == 409
    assert retry.json()["status"] == "cancelled"
    assert await available_minor(api, alice, source) == 10_000
    assert await _resolutions(sessions, scheduled["id"]) == 1


async def test_the_reconciler_fails_a_terminated_transfer_nobody_asks_about(
    api: httpx.AsyncClient,
    alice: Customer,
    terminated: Terminated,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    scheduled = terminated.payment

    result = await run_reconciler(temporal_client, settings)
    again = await run_reconciler(temporal_client, settings)

    assert (result.resolved, result.started) == (1, 0)
    assert again.checked == 0
    row = (await api.get(f"/api/payments/{scheduled['id']}", headers=alice.auth)).json()
    assert row["status"] == "failed"
    assert "terminated" in row["failure_reason"]
    assert await _resolutions(sessions, scheduled["id"]) == 1


async def test_a_transfer_resolved_as_failed_is_never_posted_by_a_late_activity(
    api: httpx.AsyncClient,
    alice: Customer,
    terminated: Terminated,
    sessions: SessionFactory,
    settings: Settings,
    temporal_client: Client,
) -> None:
    source, dest, scheduled = terminated.source, terminated.dest, terminated.payment
    await run_reconciler(temporal_client, settings)
    activities = PaymentActivities(
        sessions,
        max_single_payment_minor=settings.max_single_payment_minor,
        max_payments_per_hour=settings.max_payments_per_hour,
        review_threshold_minor=settings.payment_review_threshold_minor,
    )
    payment_id = uuid.UUID(scheduled["id"])

    with pytest.raises(ApplicationError) as refused:
        await activities.post_transfer(
            LedgerTransferInput(
                idempotency_key=transfer_key(payment_id),
                from_account_id=uuid.UUID(source),
                to_account_id=uuid.UUID(dest),
                amount=1_200,
                currency="EUR",
                owner_user_id=await owner_of(sessions, source),
            )
        )

    assert refused.value.type == "PaymentAlreadyResolved"
    async with sessions() as session:
        entry = await session.scalar(
            select(col(JournalEntry.id)).where(
                col(JournalEntry.idempotency_key) == transfer_key(payment_id)
            )
        )
        row = await session.get(Payment, payment_id)
    assert entry is None
    assert row is not None
    assert row.status == PaymentStatus.FAILED
    assert await available_minor(api, alice, source) == 10_000


async def test_a_database_that_is_down_is_a_503_with_retry_after_and_ready_names_it(
    api: httpx.AsyncClient, alice: Customer, settings: Settings, temporal_client: Client
) -> None:
    nowhere = f"postgresql://postgres@{closed_address()}/vortex"
    async with api_with(settings, temporal_client, database_url=nowhere) as down:
        accounts = await down.get("/api/accounts", headers=alice.auth)
        ready = await down.get("/ready")

    assert accounts.status_code == 503, accounts.text
    assert accounts.headers["content-type"] == PROBLEM
    assert accounts.headers["retry-after"] == str(settings.unavailable_retry_after_seconds)
    assert accounts.json()["dependency"] == "database"
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"].startswith("unavailable")
    assert (checks["redis"], checks["temporal"]) == ("ok", "ok")


async def test_a_redis_that_is_down_is_a_503_with_retry_after_and_ready_names_it(
    api: httpx.AsyncClient, alice: Customer, settings: Settings, temporal_client: Client
) -> None:
    nowhere = f"redis://{closed_address()}/0"
    async with api_with(settings, temporal_client, redis_url=nowhere) as down:
        login = await down.post(
            "/api/auth/login", json={"email": alice.email, "password": alice.password}
        )
        ready = await down.get("/ready")

    assert login.status_code == 503, login.text
    assert login.headers["content-type"] == PROBLEM
    assert "retry-after" in login.headers
    assert login.json()["dependency"] == "redis"
    checks = ready.json()["checks"]
    assert checks["redis"].startswith("unavailable")
    assert (checks["database"], checks["temporal"]) == ("ok", "ok")


async def test_a_temporal_that_cannot_be_reached_makes_ready_name_it(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    async with api_with(settings, await unreachable_temporal()) as down:
        ready = await down.get("/ready")

    assert ready.status_code == 503
    assert "retry-after" in ready.headers
    checks = ready.json()["checks"]
    assert checks["temporal"].startswith("unavailable")
    assert (checks["database"], checks["redis"]) == ("ok", "ok")


async def test_a_scheduled_transfer_whose_account_closed_before_it_ran_ends_failed(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory
) -> None:
    source, dest = await _accounts(api, alice, sessions)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    headers = alice.auth | {"Idempotency-Key": "soon"}
    scheduled = await api.post(
        "/api/payments/transfer", headers=headers, json=_body(source, dest, execute_at=soon)
    )
    assert scheduled.status_code == 202, scheduled.text
    closed = await api.delete(f"/api/accounts/{dest}", headers=alice.auth)
    assert closed.status_code == 200, closed.text

    async def final() -> dict[str, Any] | None:
        url = f"/api/payments/{scheduled.json()['id']}"
        row = (await api.get(url, headers=alice.auth)).json()
        return dict(row) if row["status"] not in ("scheduled", "processing") else None

    row = await eventually(final, max_wait=15, interval=0.05)
    assert (row["status"], row["failure_reason"]) == (
        "failed",
        "AccountClosed: the account is closed",
    )
    assert await available_minor(api, alice, source) == 10_000
