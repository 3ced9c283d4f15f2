# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""External payments are never stranded or wedged: a row whose workflow could not start is
sent by the reconciler; a payment whose workflow was terminated is settled by the rail's word;
ops can reconcile one payment or force-resolve one the rail does not know (`vortex payments`),
its hold released exactly once, audited."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from temporal.ids import external_payment_workflow_id
from tests.cli_support import run_vortex
from tests.payment_support import (  # noqa: F401 - fixtures
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
)
from tests.rail_support import eventually
from tests.recovery_support import api_with, run_reconciler, unreachable_temporal

FUNDS = 500_000


@pytest.fixture
async def alice(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> Payer:
    """A customer with 5000.00 EUR and a saved beneficiary."""
    return await new_payer(api, outbox, sessions)


async def _terminate(client: Client, payment_id: str) -> None:
    handle = client.get_workflow_handle(external_payment_workflow_id(uuid.UUID(payment_id)))
    await handle.terminate(reason="ops test")


async def _requires_action(api: httpx.AsyncClient, payer: Payer, rail: httpx.AsyncClient) -> str:
    """A payment whose submits all failed (the rail never recorded it), its money held; the
    rail answers again afterwards."""
    await set_rail(rail, transient_failure_rate=1.0)
    payment_id = str((await pay(api, payer, "lost-1", amount="30.00")).json()["id"])
    await wait_status(api, payer, payment_id, "requires_action")
    await set_rail(rail, transient_failure_rate=0.0)
    assert await balance(api, payer) == (FUNDS, 3_000, FUNDS - 3_000)
    return payment_id


async def test_an_external_payment_made_while_temporal_is_down_is_sent_by_the_reconciler(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    async with api_with(settings, await unreachable_temporal()) as down:
        refused = await pay(down, alice, "while-down")
    assert refused.status_code == 503, refused.text
    payment_id = refused.json()["payment_id"]
    assert (await payment_row(api, alice, payment_id))["status"] == "processing"
    assert await rail_payment(rail, payment_id) is None

    result = await run_reconciler(temporal_client, settings)
    await wait_status(api, alice, payment_id, "completed")

    assert result.started == 1
    assert await balance(api, alice) == (FUNDS - 2_500, 0, FUNDS - 2_500)
    at_rail = await rail_payment(rail, payment_id)
    assert at_rail is not None
    assert at_rail["status"] == "settled"
    assert (await verify_ledger(sessions)).ok


@pytest.mark.parametrize("webhooks_enabled", [False])
@pytest.mark.parametrize("poll_interval", [3600.0])
async def test_a_terminated_payment_the_rail_settled_is_completed_by_the_reconciler(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    payment_id = str((await pay(api, alice, "settled-1")).json()["id"])
    await wait_status(api, alice, payment_id, "submitted")

    async def settled() -> bool | None:
        found = await rail_payment(rail, payment_id)
        return True if found is not None and found["status"] == "settled" else None

    await eventually(settled, max_wait=10, interval=0.05)
    await _terminate(temporal_client, payment_id)
    assert (await payment_row(api, alice, payment_id))["status"] == "submitted"

    result = await run_reconciler(temporal_client, settings)
    again = await run_reconciler(temporal_client, settings)

    assert (result.resolved, again.checked) == (1, 0)
    assert (await payment_row(api, alice, payment_id))["status"] == "completed"
    assert await balance(api, alice) == (FUNDS - 2_500, 0, FUNDS - 2_500)
    assert len(await audit_actions(sessions, "payment.resolved")) == 1
    assert (await verify_ledger(sessions)).ok


async def test_a_terminated_payment_the_rail_never_got_is_failed_and_its_hold_released(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    payment_id = await _requires_action(api, alice, rail)
    await _terminate(temporal_client, payment_id)
    retry = await api.post(f"/api/payments/{payment_id}/retry", headers=alice.auth)

    result = await run_reconciler(temporal_client, settings)

    assert retry.status_code == 409
    assert result.resolved == 1
    row = await payment_row(api, alice, payment_id)
    assert row["status"] == "failed"
    assert "no record" in row["failure_reason"]
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    assert (await verify_ledger(sessions)).ok


async def test_ops_resolve_settles_a_payment_the_rail_does_not_know_releasing_its_hold_once(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
) -> None:
    payment_id = await _requires_action(api, alice, rail)

    reconciled = await run_vortex(settings, "payments", "reconcile", payment_id)
    resolve = ("payments", "resolve", payment_id, "--outcome", "failed", "--reason", "rail lost it")
    first = await run_vortex(settings, *resolve)
    again = await run_vortex(settings, *resolve)

    assert reconciled[0] == 0, reconciled[1]
    assert "nothing to reconcile" in reconciled[1]
    assert first[0] == 0, first[1]
    assert "resolved as failed (hold: released)" in first[1]
    assert again[0] == 0, again[1]
    assert "already failed" in again[1]
    handle = temporal_client.get_workflow_handle(
        external_payment_workflow_id(uuid.UUID(payment_id))
    )
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    row = await payment_row(api, alice, payment_id)
    assert (row["status"], row["failure_reason"]) == ("failed", "resolved by ops: rail lost it")
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    audited = await audit_actions(sessions, "payment.resolved")
    assert len(audited) == 1
    assert audited[0].client is not None
    assert audited[0].client.startswith("cli:")
    assert (await verify_ledger(sessions)).ok


async def test_ops_resolve_is_refused_while_the_rail_knows_the_payment(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    settings: Settings,
    sessions: SessionFactory,
) -> None:
    await set_rail(rail, settle_delay_seconds=3600)
    payment_id = str((await pay(api, alice, "pending-1")).json()["id"])
    await wait_status(api, alice, payment_id, "submitted")

    refused = await run_vortex(
        settings, "payments", "resolve", payment_id, "--outcome", "failed", "--reason", "x"
    )

    assert refused[0] == 1, refused[1]
    assert "the rail knows" in refused[1]
    assert (await payment_row(api, alice, payment_id))["status"] == "submitted"
    assert await balance(api, alice) == (FUNDS, 2_500, FUNDS - 2_500)
    assert await audit_actions(sessions, "payment.resolved") == []


async def test_ops_reconcile_starts_the_workflow_of_a_stranded_payment(
    api: httpx.AsyncClient,
    alice: Payer,
    settings: Settings,
) -> None:
    async with api_with(settings, await unreachable_temporal()) as down:
        refused = await pay(down, alice, "stranded-cli")
    payment_id = refused.json()["payment_id"]

    started = await run_vortex(settings, "payments", "reconcile", payment_id)
    await wait_status(api, alice, payment_id, "completed")
    after = await run_vortex(settings, "payments", "reconcile", payment_id)

    assert started[0] == 0, started[1]
    assert "was stranded: its workflow" in started[1]
    assert "already completed" in after[1]
    assert await balance(api, alice) == (FUNDS - 2_500, 0, FUNDS - 2_500)
