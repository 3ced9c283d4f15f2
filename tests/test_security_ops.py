# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""Ops routes do what the runbook did by CLI, with the same functions, audited with the
staff member and the reason: fund, list by status, cancel, retry, reconcile."""

from __future__ import annotations

import httpx
import pytest

from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from models.staff.tables import StaffRole
from tests.payment_support import (  # noqa: F401 - fixtures
    Payer,
    api,
    api_port,
    approval_timeout,
    balance,
    new_payer,
    pay,
    poll_interval,
    rail,
    settings,
    submit_max_attempts,
    wait_status,
    webhooks_enabled,
)
from tests.security_support import Member, audit_rows, new_member


@pytest.fixture
async def alice(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> Payer:
    """A customer with 5000.00 EUR and a beneficiary."""
    return await new_payer(api, outbox, sessions, funds=500_000)


@pytest.fixture
async def ops(services: Services) -> Member:
    """An ops staff member."""
    return await new_member(services, "ops@bank.example", StaffRole.OPS)


async def test_ops_fund_an_account_once_per_reference(
    api: httpx.AsyncClient, alice: Payer, ops: Member, sessions: SessionFactory
) -> None:
    body = {
        "account_number": alice.account_number,
        "amount": "12.34",
        "reference": "wire-2026-0001",
        "reason": "incoming wire matched by hand",
    }

    first = await api.post("/api/staff/ops/fund", headers=ops.auth, json=body)
    again = await api.post("/api/staff/ops/fund", headers=ops.auth, json=body)
    unknown = await api.post(
        "/api/staff/ops/fund", headers=ops.auth, json=body | {"account_number": "000000000000"}
    )
    by_customer = await api.post("/api/staff/ops/fund", headers=alice.auth, json=body)

    assert first.status_code == 200, first.text
    assert again.json()["entry_id"] == first.json()["entry_id"]
    assert await balance(api, alice) == (501_234, 0, 501_234)
    assert unknown.status_code == 404
    assert by_customer.status_code == 404
    funded = await audit_rows(sessions, "staff.fund")
    assert [(e.actor_user_id, e.details["reason"]) for e in funded] == [
        (ops.user_id, "incoming wire matched by hand"),
        (ops.user_id, "incoming wire matched by hand"),
    ]


async def test_ops_list_cancel_and_reconcile_payments(
    api: httpx.AsyncClient, alice: Payer, ops: Member, sessions: SessionFactory
) -> None:
    waiting = (await pay(api, alice, "big", amount="1500.00")).json()["id"]
    await wait_status(api, alice, waiting, "pending_approval")
    done = (await pay(api, alice, "small", amount="5.00")).json()["id"]
    await wait_status(api, alice, done, "completed")

    listed = await api.get("/api/staff/ops/payments?status=pending_approval", headers=ops.auth)
    no_reason = await api.post(
        f"/api/staff/ops/payments/{waiting}/cancel", headers=ops.auth, json={}
    )
    cancelled = await api.post(
        f"/api/staff/ops/payments/{waiting}/cancel",
        headers=ops.auth,
        json={"reason": "customer asked by phone"},
    )
    final = await wait_status(api, alice, waiting, "cancelled")
    retry = await api.post(
        f"/api/staff/ops/payments/{waiting}/retry", headers=ops.auth, json={"reason": "again"}
    )
    reconciled = await api.post(
        f"/api/staff/ops/payments/{done}/reconcile", headers=ops.auth, json={"reason": "check"}
    )

    assert [p["id"] for p in listed.json()["items"]] == [waiting]
    assert no_reason.status_code == 422
    assert cancelled.status_code == 202, cancelled.text
    assert final["status"] == "cancelled"
    assert retry.status_code == 409
    assert reconciled.status_code == 200, reconciled.text
    assert "nothing to do" in reconciled.json()["outcome"]
    assert await balance(api, alice) == (499_500, 0, 499_500)
    actions = [
        e.action
        for e in await audit_rows(sessions, "staff.payment_cancel", "staff.payment_reconcile")
    ]
    assert actions == ["staff.payment_cancel", "staff.payment_reconcile"]
