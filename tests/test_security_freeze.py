# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""Freezes of outbound payments: a customer's own freeze (lifted with TOTP) and a fraud report
(lifted only by staff review), which also stops an external payment already waiting for
approval, on the live API with the rail simulator."""

from __future__ import annotations

import httpx
import pytest
from temporalio.client import Client

from activities.ledger.verify import verify_ledger
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from models.payments.payloads import ApprovalDecision, PaymentState
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
    rail_payment,
    settings,
    submit_max_attempts,
    wait_status,
    webhooks_enabled,
    wrong_totp,
)
from tests.rail_support import eventually
from tests.security_support import audit_rows, new_member

FUNDS = 500_000


@pytest.fixture
async def alice(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> Payer:
    """A customer with 5000.00 EUR and a beneficiary."""
    return await new_payer(api, outbox, sessions, funds=FUNDS)


async def test_a_self_freeze_refuses_new_payments_until_lifted_with_totp(
    api: httpx.AsyncClient, alice: Payer, sessions: SessionFactory
) -> None:
    frozen = await api.post(
        "/api/security/freeze", headers=alice.auth, json={"account_id": alice.account_id}
    )
    twice = await api.post(
        "/api/security/freeze", headers=alice.auth, json={"account_id": alice.account_id}
    )
    refused = await pay(api, alice, "while-frozen", amount="5.00")
    wrong = await api.post(
        "/api/security/unfreeze",
        headers=alice.auth,
        json={"account_id": alice.account_id, "totp_code": wrong_totp(alice.customer.totp_secret)},
    )
    still = await api.get(f"/api/security/freeze/{alice.account_id}", headers=alice.auth)
    lifted = await api.post(
        "/api/security/unfreeze",
        headers=alice.auth,
        json={"account_id": alice.account_id, "totp_code": alice.customer.fresh_totp()},
    )
    allowed = await pay(api, alice, "after-unfreeze", amount="5.00")

    assert frozen.status_code == 200
    assert frozen.json() == {"account_id": alice.account_id, "frozen": True, "kinds": ["self"]}
    assert twice.json() == frozen.json()
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/account-frozen")
    assert wrong.status_code == 401
    assert still.json()["frozen"] is True
    assert lifted.status_code == 200
    assert lifted.json()["frozen"] is False
    assert allowed.status_code == 202, allowed.text
    actions = [e.action for e in await audit_rows(sessions, "account.frozen", "account.unfrozen")]
    assert actions == ["account.frozen", "account.unfrozen"]


async def test_a_fraud_report_stops_an_external_payment_waiting_for_approval(
    api: httpx.AsyncClient,
    alice: Payer,
    services: Services,
    temporal_client: Client,
    rail: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    payment_id = (await pay(api, alice, "big", amount="1500.00")).json()["id"]
    await wait_status(api, alice, payment_id, "pending_approval")

    report = await api.post(
        "/api/security/fraud-reports",
        headers=alice.auth,
        json={"account_id": alice.account_id, "description": "I did not make this payment"},
    )
    again = await api.post(
        "/api/security/fraud-reports",
        headers=alice.auth,
        json={"account_id": alice.account_id, "description": "still not me"},
    )
    by_api = await api.post(
        f"/api/payments/{payment_id}/approve",
        headers=alice.auth,
        json={"totp_code": alice.customer.fresh_totp()},
    )
    # An approval already on its way when the account froze (sent to the workflow directly):
    # the hold placement refuses, so nothing is held or sent to the rail.
    handle = temporal_client.get_workflow_handle(f"payment-{payment_id}")
    await handle.execute_update(
        "approve", ApprovalDecision(approved=True), result_type=PaymentState
    )
    final = await wait_status(api, alice, payment_id, "failed", "completed", "cancelled")

    assert report.status_code == 202, report.text
    assert again.status_code == 200
    assert again.json()["id"] == report.json()["id"]
    assert by_api.status_code == 409
    assert by_api.json()["type"].endswith("/account-frozen")
    assert final["status"] == "failed"
    assert "AccountFrozen" in (final.get("failure_reason") or "")
    assert await rail_payment(rail, payment_id) is None
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    assert (await verify_ledger(sessions)).ok

    # Only staff review lifts a fraud freeze: the customer's TOTP does not.
    self_lift = await api.post(
        "/api/security/unfreeze",
        headers=alice.auth,
        json={"account_id": alice.account_id, "totp_code": alice.customer.fresh_totp()},
    )
    assert self_lift.json()["kinds"] == ["fraud"]
    reviewer = await new_member(services, "comp@bank.example", StaffRole.COMPLIANCE)
    support = await new_member(services, "support@bank.example", StaffRole.SUPPORT)
    review_url = f"/api/security/incidents/{report.json()['id']}/review"
    body = {"lift_freeze": True, "reason": "customer confirmed the payee by phone"}
    by_support = await api.post(review_url, headers=support.auth, json=body)
    reviewed = await api.post(review_url, headers=reviewer.auth, json=body)

    async def unfrozen() -> bool | None:
        state = await api.get(f"/api/security/freeze/{alice.account_id}", headers=alice.auth)
        return True if state.json()["frozen"] is False else None

    assert by_support.status_code == 404
    assert reviewed.status_code == 202, reviewed.text
    assert await eventually(unfrozen, max_wait=10, interval=0.05)
    assert (await pay(api, alice, "after-review", amount="5.00")).status_code == 202
