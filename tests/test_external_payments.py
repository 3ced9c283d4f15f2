# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""External payments end to end: the live API, real workers and Temporal, PostgreSQL and the rail
simulator calling our webhook. Each money path ends with the ledger invariant check."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.ledger.tables import Hold, Transaction
from models.payments.tables import Payment
from temporal import search_attributes
from tests.conftest import TEST_CONVERTER, RunningWorkers
from tests.payment_support import (  # noqa: F401 - fixtures
    FINAL,
    REJECTED_IBAN,
    Payer,
    api,
    api_port,
    approval_timeout,
    audit_actions,
    balance,
    new_payer,
    pay,
    payment_row,
    poll_interval,
    rail,
    rail_payment,
    set_rail,
    settings,
    submit_max_attempts,
    wait_status,
    webhooks_enabled,
    wrong_totp,
)
from tests.rail_support import eventually
from tests.replay_support import HISTORIES, recorded, replay
from workers.assembly import WorkerDeps, build_workers
from workflows.external_payment import ExternalPaymentWorkflow

FUNDS = 500_000  # 5000.00 EUR; the review threshold is 1000.00


def _replayer() -> Replayer:
    return Replayer(workflows=[ExternalPaymentWorkflow], data_converter=TEST_CONVERTER)


@pytest.mark.parametrize("path", recorded("ExternalPaymentWorkflow"), ids=lambda p: p.stem)
async def test_recorded_external_payment_histories_still_replay(path: Path) -> None:
    await replay(path, ExternalPaymentWorkflow)


@pytest.fixture
async def alice(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> Payer:
    """A customer with 5000.00 EUR and a beneficiary."""
    return await new_payer(api, outbox, sessions, funds=FUNDS)


def _handle(client: Client, payment_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(f"payment-{payment_id}")


async def _activities(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Activity types scheduled by the workflow, in order."""
    history = await handle.fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def _ledger_ok(sessions: SessionFactory) -> None:
    report = await verify_ledger(sessions)
    assert report.ok, report


async def _submit_attempts(handle: WorkflowHandle[Any, Any]) -> int | None:
    """The attempt number of the pending rail submit, if one is pending."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name == "rail.submit":
            return int(pending.attempt)
    return None


async def test_payment_holds_submits_and_captures_once_on_the_webhook(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    concurrent = await asyncio.gather(
        *(pay(api, alice, "pay-1", amount="25.00", description="rent share") for _ in range(3))
    )
    retry = await pay(api, alice, "pay-1", amount="25.00", description="rent share")
    changed = await pay(api, alice, "pay-1", amount="26.00", description="rent share")

    assert sorted(a.status_code for a in concurrent) == [200, 200, 202]
    first = next(a for a in concurrent if a.status_code == 202)
    payment_id = first.json()["id"]
    assert {a.json()["id"] for a in concurrent} == {payment_id}
    assert first.json()["kind"] == "external"
    assert first.json()["status_url"] == f"/api/payments/{payment_id}/status"
    assert retry.status_code == 200
    assert retry.json()["id"] == payment_id
    assert changed.status_code == 422
    assert changed.json()["type"].endswith("/idempotency-key-reused")
    final = await wait_status(api, alice, payment_id, "completed")
    assert final["failure_reason"] is None
    assert await balance(api, alice) == (FUNDS - 2_500, 0, FUNDS - 2_500)
    at_rail = await rail_payment(rail, payment_id)
    assert at_rail is not None
    assert at_rail["status"] == "settled"
    assert at_rail["creditor_iban"] == "DE89370400440532013000"
    assert at_rail["debtor_account"] == alice.account_number
    row = await payment_row(api, alice, payment_id)
    assert row["status"] == "completed"
    assert row["completed_at"] is not None
    handle = _handle(temporal_client, payment_id)
    steps = await _activities(handle)
    assert steps.index("ledger.place_hold") < steps.index("rail.submit")
    assert steps.index("rail.submit") < steps.index("ledger.capture_hold")
    assert "ledger.release_hold" not in steps
    assert steps.count("rail.submit") == 1
    deliveries = (await rail.get("/v1/webhooks")).json()
    assert [(d["type"], d["state"]) for d in deliveries] == [("payment.settled", "delivered")]
    described = await handle.describe()
    attrs = described.typed_search_attributes
    stored = await _row(sessions, payment_id)
    assert attrs.get(search_attributes.STATUS) == "completed"
    assert attrs.get(search_attributes.AMOUNT) == 2_500
    assert attrs.get(search_attributes.CURRENCY) == "EUR"
    assert attrs.get(search_attributes.USER_ID) == str(stored.user_id)
    assert stored.rail_payment_id == at_rail["rail_payment_id"]
    assert (await described.static_summary()) == "External payment of 25.00 EUR"
    async with sessions() as session:
        paid = (
            (
                await session.execute(
                    select(Transaction).where(
                        col(Transaction.account_id) == uuid.UUID(alice.account_id),
                        col(Transaction.direction) == "debit",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(t.amount, t.status, t.kind, t.counterparty) for t in paid] == [
        (2_500, "posted", "external_payment", "Grace Hopper")
    ]
    refused = await api.post(f"/api/payments/{payment_id}/cancel", headers=alice.auth)
    assert refused.status_code == 409  # cancel after settlement
    assert refused.json()["type"].endswith("/not-cancellable")
    history = await handle.fetch_history()
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "external_payment_completed.json").write_text(history.to_json())
    await _replayer().replay_workflow(history)
    await _ledger_ok(sessions)


async def _row(sessions: SessionFactory, payment_id: str) -> Payment:
    async with sessions() as session:
        row = await session.get(Payment, uuid.UUID(payment_id))
    assert row is not None
    return row


async def test_rail_rejection_releases_the_hold_and_moves_nothing(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    bob = await new_payer(api, outbox, sessions, email="bob@example.com", iban=REJECTED_IBAN)

    answer = await pay(api, bob, "rej-1", amount="40.00")

    payment_id = answer.json()["id"]
    final = await wait_status(api, bob, payment_id, *("completed", "rejected"))
    assert final["status"] == "rejected"
    assert "AC04" in final["failure_reason"]
    assert await balance(api, bob) == (FUNDS, 0, FUNDS)
    async with sessions() as session:
        holds = (await session.execute(select(Hold))).scalars().all()
    assert [h.status for h in holds] == ["released"]
    await _ledger_ok(sessions)


@pytest.mark.parametrize("submit_max_attempts", [12])
async def test_transient_rail_failures_are_retried_until_the_rail_accepts(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    await set_rail(rail, transient_failure_rate=1.0)

    payment_id = (await pay(api, alice, "flaky-1", amount="10.00")).json()["id"]
    handle = _handle(temporal_client, payment_id)

    async def failed_already() -> int | None:
        attempt = await _submit_attempts(handle)
        return attempt if attempt is not None and attempt >= 2 else None

    await eventually(failed_already, max_wait=10)
    await set_rail(rail, transient_failure_rate=0.0)
    await wait_status(api, alice, payment_id, "completed")
    assert await balance(api, alice) == (FUNDS - 1_000, 0, FUNDS - 1_000)
    assert (await _activities(handle)).count("rail.submit") == 1  # one activity, many attempts
    await _ledger_ok(sessions)


async def _exhausted(api: httpx.AsyncClient, payer: Payer, rail: httpx.AsyncClient) -> list[str]:
    """Two payments whose submit retries run out (the rail fails every call): requires_action."""
    await set_rail(rail, transient_failure_rate=1.0)
    ids = [str((await pay(api, payer, key, amount="30.00")).json()["id"]) for key in "ab"]
    for payment_id in ids:
        waiting = await wait_status(api, payer, payment_id, "requires_action")
        assert waiting["source"] == "workflow"
        assert "could not be reached (2 attempts)" in waiting["failure_reason"]
    assert await balance(api, payer) == (FUNDS, 6_000, FUNDS - 6_000)  # still held
    return ids


async def test_exhausted_retries_wait_for_ops_or_the_customer_to_retry(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    by_ops, by_customer = await _exhausted(api, alice, rail)
    waiting_row = await _row(sessions, by_ops)
    assert waiting_row.failure_reason is not None  # ops see why in the read model too
    assert "could not be reached" in waiting_row.failure_reason
    user_id = waiting_row.user_id
    query = (
        'WorkflowType="ExternalPaymentWorkflow" AND VortexStatus="requires_action" '
        f'AND VortexUserId="{user_id}"'
    )

    async def listed() -> set[str] | None:
        ids = {w.id async for w in temporal_client.list_workflows(query)}
        return ids if len(ids) == 2 else None

    assert await eventually(listed, max_wait=10) == {f"payment-{by_ops}", f"payment-{by_customer}"}
    await set_rail(rail, transient_failure_rate=0.0)
    await _handle(temporal_client, by_ops).signal("ops_retry")
    retried = await api.post(f"/api/payments/{by_customer}/retry", headers=alice.auth)

    assert retried.status_code == 202, retried.text
    await wait_status(api, alice, by_ops, "completed")
    await wait_status(api, alice, by_customer, "completed")
    assert (await _row(sessions, by_ops)).failure_reason is None  # cleared once it completed
    history = await _handle(temporal_client, by_ops).fetch_history()
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "external_payment_retried.json").write_text(history.to_json())
    await _replayer().replay_workflow(history)
    again = await api.post(f"/api/payments/{by_customer}/retry", headers=alice.auth)
    assert again.status_code == 409
    assert again.json()["type"].endswith("/not-retryable")
    assert await balance(api, alice) == (FUNDS - 6_000, 0, FUNDS - 6_000)
    await _ledger_ok(sessions)


@pytest.mark.parametrize(("hold_ttl", "hold_margin"), [(60, 57)])  # deadline 3 s after the hold
async def test_payments_waiting_for_action_are_cancelled_before_their_hold_expires(
    api: httpx.AsyncClient, alice: Payer, rail: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    ids = await _exhausted(api, alice, rail)

    async def cancel_refused(payment_id: str) -> bool | None:
        answer = await api.get(f"/api/payments/{payment_id}/status", headers=alice.auth)
        reason = answer.json()["failure_reason"] or ""
        return True if reason.startswith("cancel refused: the rail cannot be reached") else None

    for payment_id in ids:  # the deadline came while the rail was down: nothing is released
        await eventually(lambda pid=payment_id: cancel_refused(pid), max_wait=20)  # type: ignore[misc]
        assert (await payment_row(api, alice, payment_id))["status"] == "requires_action"
    assert await balance(api, alice) == (FUNDS, 6_000, FUNDS - 6_000)
    await set_rail(rail, transient_failure_rate=0.0)  # the rail can confirm it has nothing

    for payment_id in ids:
        final = await wait_status(api, alice, payment_id, *FINAL, max_wait=20)
        assert (final["status"], final["failure_reason"]) == (
            "cancelled",
            "cancelled by the bank: its hold was due to expire",
        )
        assert await rail_payment(rail, payment_id) is None
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    await _ledger_ok(sessions)


async def test_payments_waiting_for_action_are_cancelled_by_the_customer_or_ops(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    by_customer, by_ops = await _exhausted(api, alice, rail)
    await set_rail(rail, transient_failure_rate=0.0)  # so the rail can confirm it has nothing

    cancelled = await api.post(f"/api/payments/{by_customer}/cancel", headers=alice.auth)
    await _handle(temporal_client, by_ops).signal("ops_cancel")

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["failure_reason"] == "cancelled by the customer"
    final = await wait_status(api, alice, by_ops, *("cancelled", "completed"))
    assert (final["status"], final["failure_reason"]) == ("cancelled", "cancelled by ops")
    assert await rail_payment(rail, by_customer) is None
    assert await rail_payment(rail, by_ops) is None
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    await _ledger_ok(sessions)


async def test_cancel_after_submission_cancels_at_the_rail(
    api: httpx.AsyncClient, alice: Payer, rail: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await set_rail(rail, settle_delay_seconds=300)
    payment_id = (await pay(api, alice, "cancel-sub", amount="12.00")).json()["id"]
    await wait_status(api, alice, payment_id, "submitted")
    assert await balance(api, alice) == (FUNDS, 1_200, FUNDS - 1_200)

    cancelled = await api.post(f"/api/payments/{payment_id}/cancel", headers=alice.auth)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    at_rail = await rail_payment(rail, payment_id)
    assert at_rail is not None
    assert at_rail["status"] == "cancelled"
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    again = await api.post(f"/api/payments/{payment_id}/cancel", headers=alice.auth)
    assert again.status_code == 409
    await _ledger_ok(sessions)


@pytest.mark.parametrize(("webhooks_enabled", "poll_interval"), [(False, 60.0)])
async def test_cancel_is_refused_when_the_rail_settled_before_we_heard(
    api: httpx.AsyncClient, alice: Payer, rail: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await set_rail(rail, settle_delay_seconds=300)
    payment_id = (await pay(api, alice, "race", amount="7.00")).json()["id"]
    await wait_status(api, alice, payment_id, "submitted")
    at_rail = await rail_payment(rail, payment_id)
    assert at_rail is not None
    settled = await rail.post(f"/v1/payments/{at_rail['rail_payment_id']}/settle")
    assert settled.status_code == 200  # no webhook (disabled) and the next poll is far away

    refused = await api.post(f"/api/payments/{payment_id}/cancel", headers=alice.auth)

    assert refused.status_code == 409, refused.text
    assert "already been settled by the rail" in refused.json()["detail"]
    await wait_status(api, alice, payment_id, "completed")
    assert await balance(api, alice) == (FUNDS - 700, 0, FUNDS - 700)
    await _ledger_ok(sessions)


@pytest.mark.parametrize(("webhooks_enabled", "poll_interval"), [(False, 0.1)])
async def test_without_webhooks_polling_finds_the_outcome(
    api: httpx.AsyncClient, alice: Payer, sessions: SessionFactory
) -> None:
    payment_id = (await pay(api, alice, "poll", amount="3.00")).json()["id"]

    await wait_status(api, alice, payment_id, "completed")

    assert await balance(api, alice) == (FUNDS - 300, 0, FUNDS - 300)
    await _ledger_ok(sessions)


async def test_large_payments_wait_for_totp_approval_and_can_be_cancelled_meanwhile(
    api: httpx.AsyncClient, alice: Payer, sessions: SessionFactory
) -> None:
    payment_id = (await pay(api, alice, "big", amount="1500.00")).json()["id"]
    dropped = (await pay(api, alice, "never", amount="1000.00")).json()["id"]
    pending = await wait_status(api, alice, payment_id, "pending_approval")
    assert pending["source"] == "workflow"
    await wait_status(api, alice, dropped, "pending_approval")
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)  # nothing held before approval
    url = f"/api/payments/{payment_id}/approve"

    wrong = await api.post(
        url, headers=alice.auth, json={"totp_code": wrong_totp(alice.customer.totp_secret)}
    )
    cancelled = await api.post(f"/api/payments/{dropped}/cancel", headers=alice.auth)
    assert wrong.status_code == 401
    assert wrong.json()["type"].endswith("/invalid-mfa-code")
    assert (await wait_status(api, alice, payment_id, "pending_approval"))["status"] == (
        "pending_approval"
    )
    approved = await api.post(
        url, headers=alice.auth, json={"totp_code": alice.customer.fresh_totp()}
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "processing"
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    await wait_status(api, alice, payment_id, "completed")
    assert await balance(api, alice) == (FUNDS - 150_000, 0, FUNDS - 150_000)
    again = await api.post(url, headers=alice.auth, json={"totp_code": alice.customer.fresh_totp()})
    assert again.status_code == 409
    approvals = await audit_actions(sessions, "payment.approval")
    assert [a.details["accepted"] for a in approvals] == [False, True]
    async with sessions() as session:
        holds = (await session.execute(select(Hold))).scalars().all()
    assert [h.amount for h in holds] == [150_000]  # the cancelled one never held money
    await _ledger_ok(sessions)


@pytest.mark.parametrize("approval_timeout", [1])
async def test_unapproved_payment_is_cancelled_at_the_deadline(
    api: httpx.AsyncClient, alice: Payer, sessions: SessionFactory
) -> None:
    payment_id = (await pay(api, alice, "slow", amount="2000.00")).json()["id"]
    await wait_status(api, alice, payment_id, "pending_approval")

    final = await wait_status(api, alice, payment_id, "cancelled")

    assert final["failure_reason"] == "not approved before the deadline"
    late = await api.post(
        f"/api/payments/{payment_id}/approve",
        headers=alice.auth,
        json={"totp_code": alice.customer.fresh_totp()},
    )
    assert late.status_code == 409
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    await _ledger_ok(sessions)


async def test_insufficient_funds_is_refused_up_front_or_fails_the_payment(
    api: httpx.AsyncClient, alice: Payer, sessions: SessionFactory
) -> None:
    too_much = await pay(api, alice, "greedy", amount="5000.01")
    assert too_much.status_code == 409
    assert too_much.json()["type"].endswith("/insufficient-funds")
    big = (await pay(api, alice, "drained", amount="4000.00")).json()["id"]
    await wait_status(api, alice, big, "pending_approval")
    savings = (
        await api.post(
            "/api/accounts", headers=alice.auth, json={"currency": "EUR", "name": "Savings"}
        )
    ).json()
    moved = await api.post(
        "/api/payments/transfer",
        headers=alice.auth | {"Idempotency-Key": "sweep"},
        json={
            "from_account_id": alice.account_id,
            "to_account_id": savings["id"],
            "amount": "4500.00",
            "currency": "EUR",
        },
    )
    assert moved.status_code == 201, moved.text

    approved = await api.post(
        f"/api/payments/{big}/approve",
        headers=alice.auth,
        json={"totp_code": alice.customer.fresh_totp()},
    )

    assert approved.status_code == 200, approved.text
    final = await wait_status(api, alice, big, "failed")
    assert final["failure_reason"].startswith("InsufficientFunds")
    assert await balance(api, alice) == (50_000, 0, 50_000)
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Payment))
    assert count == 2  # the transfer and the failed payment; the refused request made nothing
    await _ledger_ok(sessions)


async def test_payment_survives_a_worker_restart_and_completes_once(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    workers: RunningWorkers,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    await set_rail(rail, settle_delay_seconds=300)
    payment_id = (await pay(api, alice, "restart", amount="8.00")).json()["id"]
    await wait_status(api, alice, payment_id, "submitted")
    await asyncio.gather(*(w.shutdown() for w in workers.workers))  # no worker is running now
    at_rail = await rail_payment(rail, payment_id)
    assert at_rail is not None

    settled = await rail.post(f"/v1/payments/{at_rail['rail_payment_id']}/settle")
    assert settled.status_code == 200

    async def delivered() -> bool | None:  # the webhook lands in the history as a signal
        deliveries = (await rail.get("/v1/webhooks")).json()
        return True if deliveries and deliveries[0]["state"] == "delivered" else None

    await eventually(delivered)
    assert (await payment_row(api, alice, payment_id))["status"] == "submitted"
    restarted = build_workers(
        temporal_client, WorkerDeps(settings=settings, sessions=sessions, email=outbox)
    )
    running = [asyncio.create_task(w.run()) for w in restarted]
    try:
        await wait_status(api, alice, payment_id, "completed")
    finally:
        await asyncio.gather(*(w.shutdown() for w in restarted))
        await asyncio.gather(*running, return_exceptions=True)
    assert await balance(api, alice) == (FUNDS - 800, 0, FUNDS - 800)
    await _ledger_ok(sessions)


async def test_bad_payment_requests_move_nothing(
    api: httpx.AsyncClient, alice: Payer, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    mallory = await new_payer(api, outbox, sessions, email="mallory@example.com", funds=0)
    card = await api.post(
        "/api/payments/methods", headers=alice.auth, json={"card_token": "tok_visa_abc12345"}
    )
    deleted = await api.post(
        "/api/payments/methods",
        headers=alice.auth,
        json={"name": "Old", "iban": "GB82 WEST 1234 5698 7654 32"},
    )
    await api.delete(f"/api/payments/methods/{deleted.json()['id']}", headers=alice.auth)

    answers = {
        "no key": await pay(api, alice, None),
        "foreign method": await pay(api, alice, "a", payment_method_id=mallory.method_id),
        "deleted method": await pay(api, alice, "b", payment_method_id=deleted.json()["id"]),
        "card": await pay(api, alice, "c", payment_method_id=card.json()["id"]),
        "foreign account": await pay(api, alice, "d", from_account_id=mallory.account_id),
        "currency": await pay(api, alice, "e", currency="USD"),
        "fraction": await pay(api, alice, "f", amount="1.001"),
        "zero": await pay(api, alice, "g", amount="0"),
        "approve a stranger's": await api.post(
            f"/api/payments/{uuid.uuid4()}/approve",
            headers=alice.auth,
            json={"totp_code": "123456"},
        ),
    }

    assert {k: v.status_code for k, v in answers.items()} == {
        "no key": 400,
        "foreign method": 404,
        "deleted method": 404,
        "card": 422,
        "foreign account": 404,
        "currency": 422,
        "fraction": 422,
        "zero": 422,
        "approve a stranger's": 404,
    }
    assert answers["card"].json()["type"].endswith("/unsupported-payment-method")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Payment)) == 0
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
