"""Freezes and internal transfers: a frozen account sends nothing (refused at the API, creating
nothing, and refused again when a scheduled transfer comes to run), but still receives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.testing import WorkflowEnvironment

from activities.ledger.verify import verify_ledger
from activities.security.freezes import freeze_account
from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.payments.payloads import PaymentState
from models.payments.tables import Payment, PaymentStatus
from models.security.tables import FreezeKind
from temporal.handles import handle_for
from temporal.ids import transfer_workflow_id
from tests import ledger_support
from tests.flows import Customer, available_minor, fund, main_account, register_customer
from tests.time_skipping_support import platform_on
from workflows.transfer import TransferWorkflow


@pytest.fixture
async def alice(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer with one EUR account."""
    return await register_customer(api, outbox, "alice@example.com")


async def _payments_from(sessions: SessionFactory, account_id: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).where(col(Payment.from_account_id) == uuid.UUID(account_id))
        )
    return int(count or 0)


async def test_a_frozen_account_sends_no_transfer_but_still_receives_one(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, alice: Customer, sessions: SessionFactory
) -> None:
    bob = await register_customer(api, outbox, "bob@example.com")
    source, bobs = await main_account(api, alice), await main_account(api, bob)
    await fund(sessions, source["id"], 10_000, "EUR")
    await fund(sessions, bobs["id"], 5_000, "EUR")
    frozen = await api.post(
        "/api/security/freeze", headers=alice.auth, json={"account_id": source["id"]}
    )
    assert frozen.status_code == 200, frozen.text

    refused = {
        how: await api.post(
            "/api/payments/transfer",
            headers=alice.auth | {"Idempotency-Key": f"frozen-{how}"},
            json={"from_account_id": source["id"], "amount": "1.00", "currency": "EUR"} | target,
        )
        for how, target in {
            "by number": {"to_account_number": bobs["number"]},
            "to an unknown number": {"to_account_number": "000000000000"},
        }.items()
    }
    received = await api.post(
        "/api/payments/transfer",
        headers=bob.auth | {"Idempotency-Key": "to-frozen"},
        json={
            "from_account_id": bobs["id"],
            "to_account_number": source["number"],
            "amount": "2.50",
            "currency": "EUR",
        },
    )

    assert refused["by number"].status_code == 409, refused["by number"].text
    problem = refused["by number"].json()
    assert problem["type"].endswith("/account-frozen")
    # The destination is looked up before the freeze, as before: an unknown one is a 404.
    assert refused["to an unknown number"].status_code == 404
    assert await _payments_from(sessions, source["id"]) == 0  # nothing created
    assert received.status_code == 201, received.text  # a freeze stops outbound money only
    assert received.json()["status"] == "completed"
    assert await available_minor(api, alice, source["id"]) == 10_000 + 250
    assert await available_minor(api, bob, bobs["id"]) == 5_000 - 250
    assert (await verify_ledger(sessions)).ok


async def test_a_scheduled_transfer_from_an_account_frozen_before_it_runs_fails_moving_nothing(
    time_skipping: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    client = time_skipping.client
    user_id = await ledger_support.new_user(sessions, "erin")
    source = await ledger_support.funded_account(sessions, user_id, 10_000)
    savings = await ledger_support.funded_account(sessions, user_id, 0, name="Savings")
    body = {
        "from_account_id": str(source),
        "to_account_id": str(savings),
        "amount": "40.00",
        "currency": "EUR",
        "execute_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    async with platform_on(time_skipping, settings, sessions, outbox) as (api, services):
        token, _ = services.tokens.issue(user_id, "access", 900, sid=str(uuid.uuid4()))
        scheduled = await api.post(
            "/api/payments/transfer",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "rent"},
            json=body,
        )
        assert scheduled.status_code == 202, scheduled.text
        payment_id = uuid.UUID(scheduled.json()["id"])
        async with transaction(sessions) as session:
            assert await freeze_account(session, user_id, source, FreezeKind.FRAUD)

        await time_skipping.sleep(timedelta(days=1, minutes=5))
        result = await handle_for(
            client, TransferWorkflow.run, transfer_workflow_id(payment_id)
        ).result()

    assert isinstance(result, PaymentState)
    assert result.status == PaymentStatus.FAILED
    assert result.failure_reason is not None
    assert "frozen" in result.failure_reason.lower()
    async with sessions() as session:
        row = await session.get(Payment, payment_id)
    assert row is not None
    assert row.status == PaymentStatus.FAILED
    assert await ledger_support.balances(sessions, source, savings) == [
        (10_000, 0),
        (0, 0),
    ]
    assert (await verify_ledger(sessions)).ok
