"""Internal transfers end to end: API -> TransferWorkflow -> ledger, idempotency, scheduling,
cancellation, and the bad-input cases that must move no money."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from temporal.ids import transfer_workflow_id
from tests.conftest import TEST_CONVERTER
from tests.flows import Customer, available_minor, fund, main_account, register_customer
from tests.replay_support import HISTORIES, recorded, replay
from workflows.transfer import TransferWorkflow


async def _replay_and_keep(client: Client, payment_id: str, name: str) -> None:
    """Replay the payment's history; with VORTEX_RECORD_HISTORIES set, store it as a golden file."""
    handle = client.get_workflow_handle(transfer_workflow_id(uuid.UUID(payment_id)))
    history = await handle.fetch_history()
    if os.environ.get("VORTEX_RECORD_HISTORIES"):
        (HISTORIES / f"{name}.json").write_text(history.to_json())
    await _replayer().replay_workflow(history)


def _replayer() -> Replayer:
    return Replayer(workflows=[TransferWorkflow], data_converter=TEST_CONVERTER)


@pytest.mark.parametrize("path", recorded("TransferWorkflow"), ids=lambda p: p.stem)
async def test_recorded_transfer_histories_still_replay(path: Path) -> None:
    await replay(path, TransferWorkflow)


@pytest.fixture
async def alice(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A customer with 100.00 EUR on the main account."""
    return await register_customer(api, outbox, "alice@example.com")


async def _open_savings(api: httpx.AsyncClient, who: Customer) -> dict[str, Any]:
    """A second EUR account of the customer."""
    response = await api.post(
        "/api/accounts", headers=who.auth, json={"currency": "EUR", "name": "Savings"}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _transfer(
    api: httpx.AsyncClient, who: Customer, key: str | None, **body: Any
) -> httpx.Response:
    headers = who.auth | ({"Idempotency-Key": key} if key else {})
    return await api.post("/api/payments/transfer", headers=headers, json=body)


async def test_transfer_to_another_customer_moves_money_once_and_records_both_sides(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    alice: Customer,
    sessions: SessionFactory,
    temporal_client: Client,
) -> None:
    bob = await register_customer(api, outbox, "bob@example.com")
    source, dest = await main_account(api, alice), await main_account(api, bob)
    await fund(sessions, source["id"], 10_000, "EUR")
    body = {
        "from_account_id": source["id"],
        "to_account_number": dest["number"],
        "amount": "25.50",
        "currency": "EUR",
        "description": "dinner",
    }

    first = await _transfer(api, alice, "k-1", **body)
    retry = await _transfer(api, alice, "k-1", **body)

    assert first.status_code == 201, first.text
    assert first.json()["status"] == "completed"
    stored = await api.get(f"/api/payments/{first.json()['id']}", headers=alice.auth)
    assert stored.json() == first.json()  # the answer built from the outcome is the row
    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    assert await available_minor(api, alice, source["id"]) == 10_000 - 2_550
    assert await available_minor(api, bob, dest["id"]) == 2_550
    status = await api.get(first.json()["status_url"], headers=alice.auth)
    assert status.json() == {
        "payment_id": first.json()["id"],
        "status": "completed",
        "failure_reason": None,
        "source": "database",
    }
    report = await verify_ledger(sessions)
    assert report.ok, report
    await _replay_and_keep(temporal_client, first.json()["id"], "transfer_completed")


async def test_same_key_with_a_different_body_is_refused(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory
) -> None:
    source = await main_account(api, alice)
    savings = await _open_savings(api, alice)
    await fund(sessions, source["id"], 10_000, "EUR")
    body = {"from_account_id": source["id"], "to_account_id": savings["id"], "currency": "EUR"}

    first = await _transfer(api, alice, "k-2", amount="1.00", **body)
    changed = await _transfer(api, alice, "k-2", amount="2.00", **body)

    assert first.status_code == 201
    assert changed.status_code == 422
    assert changed.json()["type"].endswith("/idempotency-key-reused")
    assert await available_minor(api, alice, savings["id"]) == 100


async def test_bad_transfers_are_refused_and_move_no_money(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, alice: Customer, sessions: SessionFactory
) -> None:
    bob = await register_customer(api, outbox, "bob@example.com")
    source, bobs = await main_account(api, alice), await main_account(api, bob)
    usd = (
        await api.post(
            "/api/accounts", headers=alice.auth, json={"currency": "USD", "name": "Dollars"}
        )
    ).json()
    await fund(sessions, source["id"], 1_000, "EUR")
    base = {"from_account_id": source["id"], "currency": "EUR", "amount": "1.00"}

    answers = {
        "no key": await _transfer(api, alice, None, to_account_number=bobs["number"], **base),
        "same account": await _transfer(api, alice, "a", to_account_id=source["id"], **base),
        "currency": await _transfer(api, alice, "b", to_account_id=usd["id"], **base),
        "insufficient": await _transfer(
            api, alice, "c", to_account_number=bobs["number"], **(base | {"amount": "10.01"})
        ),
        "fraction": await _transfer(
            api, alice, "d", to_account_number=bobs["number"], **(base | {"amount": "1.001"})
        ),
        "zero": await _transfer(
            api, alice, "e", to_account_number=bobs["number"], **(base | {"amount": "0"})
        ),
        "foreign source": await _transfer(
            api,
            bob,
            "f",
            to_account_number=source["number"],
            **(base | {"from_account_id": source["id"]}),
        ),
        "foreign id": await _transfer(api, alice, "g", to_account_id=bobs["id"], **base),
        "unknown number": await _transfer(
            api, alice, "h", to_account_number="000000000000", **base
        ),
        "both destinations": await _transfer(
            api, alice, "i", to_account_id=usd["id"], to_account_number=bobs["number"], **base
        ),
    }

    assert {name: r.status_code for name, r in answers.items()} == {
        "no key": 400,
        "same account": 422,
        "currency": 422,
        "insufficient": 409,
        "fraction": 422,
        "zero": 422,
        "foreign source": 404,
        "foreign id": 404,
        "unknown number": 404,
        "both destinations": 422,
    }
    assert all(r.headers["content-type"] == "application/problem+json" for r in answers.values())
    assert await available_minor(api, alice, source["id"]) == 1_000
    assert await available_minor(api, bob, bobs["id"]) == 0
    assert (await api.get("/api/payments", headers=alice.auth)).json()["items"] == []


async def test_a_scheduled_transfer_can_be_cancelled_before_it_runs(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory, temporal_client: Client
) -> None:
    source = await main_account(api, alice)
    savings = await _open_savings(api, alice)
    await fund(sessions, source["id"], 5_000, "EUR")
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()

    scheduled = await _transfer(
        api,
        alice,
        "sched-1",
        from_account_id=source["id"],
        to_account_id=savings["id"],
        amount="10.00",
        currency="EUR",
        execute_at=later,
    )
    live = await api.get(scheduled.json()["status_url"], headers=alice.auth)
    cancelled = await api.post(f"/api/payments/{scheduled.json()['id']}/cancel", headers=alice.auth)
    again = await api.post(f"/api/payments/{scheduled.json()['id']}/cancel", headers=alice.auth)

    assert scheduled.status_code == 202
    assert scheduled.json()["status"] == "scheduled"
    assert live.json()["source"] == "workflow"
    assert live.json()["status"] == "scheduled"
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409
    assert await available_minor(api, alice, source["id"]) == 5_000
    assert await available_minor(api, alice, savings["id"]) == 0
    await _replay_and_keep(temporal_client, scheduled.json()["id"], "transfer_cancelled")


async def test_payments_are_listed_newest_first_with_a_cursor(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory
) -> None:
    source = await main_account(api, alice)
    savings = await _open_savings(api, alice)
    await fund(sessions, source["id"], 5_000, "EUR")
    ids = []
    for n in range(3):
        made = await _transfer(
            api,
            alice,
            f"list-{n}",
            from_account_id=source["id"],
            to_account_id=savings["id"],
            amount=f"{n + 1}.00",
            currency="EUR",
        )
        ids.append(made.json()["id"])

    first = (await api.get("/api/payments", headers=alice.auth, params={"limit": 2})).json()
    second = (
        await api.get(
            "/api/payments", headers=alice.auth, params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    too_big = await api.get("/api/payments", headers=alice.auth, params={"limit": 1000})

    assert [p["id"] for p in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
    assert too_big.status_code == 422


async def test_a_retry_is_answered_from_its_payment_even_after_the_balance_changed(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory
) -> None:
    source = await main_account(api, alice)
    savings = await _open_savings(api, alice)
    await fund(sessions, source["id"], 1_000, "EUR")
    body = {"from_account_id": source["id"], "to_account_id": savings["id"], "currency": "EUR"}

    first = await _transfer(api, alice, "r-1", amount="4.00", **body)
    drain = await _transfer(api, alice, "r-2", amount="6.00", **body)
    retry = await _transfer(api, alice, "r-1", amount="4.00", **body)

    assert (first.status_code, drain.status_code) == (201, 201)
    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    assert await available_minor(api, alice, savings["id"]) == 1_000
