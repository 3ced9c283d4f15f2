# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""The rail's signed webhook through the live API: duplicates, forgeries, malformed bodies and
inbound payments credited exactly once (or parked in suspense), all audited."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.ledger.verify import verify_ledger
from activities.providers.rail import RAIL_WEBHOOK_PATH
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.signatures import SIGNATURE_HEADER, sign
from models.ledger.tables import AccountKind, LedgerAccount, Transaction
from models.payments.payloads import RailPaymentSnapshot
from models.payments.tables import Payment, WebhookEvent
from tests.payment_support import (  # noqa: F401 - fixtures
    Payer,
    api,
    api_port,
    approval_timeout,
    audit_actions,
    balance,
    new_payer,
    pay,
    poll_interval,
    rail,
    rail_payment,
    set_rail,
    settings,
    submit_max_attempts,
    wait_status,
    webhooks_enabled,
)
from tests.rail_support import RAIL_SECRET, eventually

FUNDS = 100_000
DEBTOR_IBAN = "GB82WEST12345698765432"


async def _deliveries(rail: httpx.AsyncClient) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = (await rail.get("/v1/webhooks")).json()
    return body


async def _delivered(rail: httpx.AsyncClient, event_id: str, attempts: int = 1) -> None:
    async def probe() -> bool | None:
        found = (await rail.get(f"/v1/webhooks/{event_id}")).json()
        done = found["state"] == "delivered" and found["attempts"] >= attempts
        return True if done else None

    await eventually(probe)


async def _post_signed(
    api: httpx.AsyncClient, body: bytes, *, secret: str = RAIL_SECRET, at: float | None = None
) -> httpx.Response:
    header = sign(secret, body, int(at if at is not None else time.time()))
    return await api.post(
        RAIL_WEBHOOK_PATH,
        content=body,
        headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
    )


async def _event_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


async def test_duplicate_payment_webhooks_change_nothing(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    rail: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    alice = await new_payer(api, outbox, sessions, funds=FUNDS)
    payment_id = (await pay(api, alice, "dup", amount="20.00")).json()["id"]
    await wait_status(api, alice, payment_id, "completed")
    (event,) = await _deliveries(rail)

    redelivered = await rail.post(f"/v1/webhooks/{event['event_id']}/redeliver")
    assert redelivered.status_code == 202
    await _delivered(rail, event["event_id"], attempts=2)
    body = json.dumps(
        {
            "event_id": event["event_id"],
            "type": "payment.rejected",  # a forged-looking replay of the same id: ignored too
            "rail_payment_id": "rp_x",
            "reference": payment_id,
            "status": "rejected",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    ).encode()
    replay = await _post_signed(api, body)

    assert replay.status_code == 200
    assert replay.json() == {"received": True, "duplicate": True}
    assert await _event_count(sessions) == 1
    assert (await api.get(f"/api/payments/{payment_id}", headers=alice.auth)).json()[
        "status"
    ] == "completed"
    assert await balance(api, alice) == (FUNDS - 2_000, 0, FUNDS - 2_000)
    report = await verify_ledger(sessions)
    assert report.ok, report


async def test_unsigned_forged_stale_and_malformed_webhooks_are_refused_and_audited(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    body = json.dumps(
        {
            "event_id": "evt_forged",
            "type": "inbound.received",
            "inbound_id": "in_forged",
            "to_account_number": "123456789012",
            "amount": 1_000_000,
            "currency": "EUR",
            "debtor_name": "Mallory",
            "debtor_iban": DEBTOR_IBAN,
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    ).encode()
    good_signature = sign(RAIL_SECRET, body, int(time.time()))

    unsigned = await api.post(RAIL_WEBHOOK_PATH, content=body)
    tampered = await api.post(
        RAIL_WEBHOOK_PATH,
        content=body.replace(b"1000000", b"9000000"),
        headers={SIGNATURE_HEADER: good_signature},
    )
    wrong_key = await _post_signed(api, body, secret="not-the-secret")
    stale = await _post_signed(api, body, at=time.time() - 3600)
    malformed = await _post_signed(api, b'{"event_id": "evt_1", "type": "payment.exploded"}')
    not_json = await _post_signed(api, b"<xml/>")

    statuses = [r.status_code for r in (unsigned, tampered, wrong_key, stale, malformed, not_json)]
    assert statuses == [401, 401, 401, 401, 400, 400]
    assert unsigned.json()["type"].endswith("/invalid-webhook-signature")
    assert malformed.json()["type"].endswith("/malformed-webhook")
    rejected = await audit_actions(sessions, "webhook.rejected")
    assert [a.details["reason"] for a in rejected] == [
        "unsigned",
        "invalid or stale signature",
        "invalid or stale signature",
        "invalid or stale signature",
        "malformed",
        "malformed",
    ]
    assert await _event_count(sessions) == 0
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Transaction)) == 0


async def _inbound(rail: httpx.AsyncClient, account_number: str, amount: int) -> dict[str, Any]:
    sent = await rail.post(
        "/v1/inbound",
        json={
            "to_account_number": account_number,
            "amount": amount,
            "currency": "EUR",
            "debtor_name": "Ada Lovelace",
            "debtor_iban": DEBTOR_IBAN,
            "reference": "invoice 42",
        },
    )
    assert sent.status_code == 202, sent.text
    accepted: dict[str, Any] = sent.json()
    await _delivered(rail, accepted["event_id"])
    return accepted


async def test_inbound_payment_is_credited_exactly_once(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    rail: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    bob: Payer = await new_payer(api, outbox, sessions, email="bob@example.com", funds=0)

    accepted = await _inbound(rail, bob.account_number, 4_200)
    await rail.post(f"/v1/webhooks/{accepted['event_id']}/redeliver")
    await _delivered(rail, accepted["event_id"], attempts=2)
    # The same inbound payment under a new event id is still credited once (ledger key).
    async with sessions() as session:
        stored = await session.get(WebhookEvent, accepted["event_id"])
    assert stored is not None
    again = await _post_signed(
        api, json.dumps(stored.payload | {"event_id": f"evt_{uuid.uuid4().hex}"}).encode()
    )

    assert again.status_code == 200, again.text
    assert await balance(api, bob) == (4_200, 0, 4_200)
    async with sessions() as session:
        credits = (
            (
                await session.execute(
                    select(Transaction).where(
                        col(Transaction.account_id) == uuid.UUID(bob.account_id)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(t.amount, t.direction, t.counterparty, t.status) for t in credits] == [
        (4_200, "credit", "Ada Lovelace", "posted")
    ]
    assert [a.subject for a in await audit_actions(sessions, "inbound.credited")] == [
        f"ledger_account:{bob.account_id}"
    ]
    assert len(await audit_actions(sessions, "inbound.duplicate")) == 1
    assert await _event_count(sessions) == 2
    report = await verify_ledger(sessions)
    assert report.ok, report


async def test_inbound_payments_for_unknown_or_closed_accounts_are_parked_in_suspense(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    rail: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    bob = await new_payer(api, outbox, sessions, email="bob@example.com", funds=0)
    old = (
        await api.post("/api/accounts", headers=bob.auth, json={"currency": "EUR", "name": "Old"})
    ).json()
    closed = await api.delete(f"/api/accounts/{old['id']}", headers=bob.auth)
    assert closed.status_code == 200, closed.text

    await _inbound(rail, "999999999999", 1_500)
    await _inbound(rail, old["number"], 700)

    assert await balance(api, bob) == (0, 0, 0)
    async with sessions() as session:
        suspense = (
            await session.execute(
                select(LedgerAccount).where(
                    col(LedgerAccount.kind) == AccountKind.SUSPENSE,
                    col(LedgerAccount.currency) == "EUR",
                )
            )
        ).scalar_one()
    assert suspense.posted == 2_200
    unmatched = await audit_actions(sessions, "inbound.unmatched")
    assert [(a.details["reason"], a.details["credited_to"]) for a in unmatched] == [
        ("unknown account number", "suspense"),
        ("account closed", "suspense"),
    ]
    report = await verify_ledger(sessions)
    assert report.ok, report


async def test_payment_event_for_an_unknown_reference_is_acknowledged_and_audited(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    for reference in (str(uuid.uuid4()), "not-a-uuid"):
        body = json.dumps(
            {
                "event_id": f"evt_{uuid.uuid4().hex}",
                "type": "payment.settled",
                "rail_payment_id": "rp_unknown",
                "reference": reference,
                "status": "settled",
                "occurred_at": "2026-01-01T00:00:00Z",
            }
        ).encode()

        answer = await _post_signed(api, body)

        assert answer.status_code == 200
        assert answer.json() == {"received": True, "duplicate": False}
    unmatched = await audit_actions(sessions, "webhook.unmatched")
    assert len(unmatched) == 2


async def _signal_processed(client: Client, workflow_id: str) -> None:
    """Wait until a workflow task has completed after the last signal reached the workflow."""

    async def probe() -> bool | None:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        kinds = [event.event_type for event in history.events]
        signalled = max(
            (
                i
                for i, k in enumerate(kinds)
                if k == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            ),
            default=None,
        )
        if signalled is None:  # buffered while a workflow task runs: not in the history yet
            return None
        done = any(k == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for k in kinds[signalled:])
        return True if done else None

    await eventually(probe)


async def test_settled_reports_about_another_payment_never_touch_the_hold(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    rail: httpx.AsyncClient,
    sessions: SessionFactory,
    temporal_client: Client,
) -> None:
    alice = await new_payer(api, outbox, sessions, funds=FUNDS)
    await set_rail(rail, settle_delay_seconds=300)
    payment_id = (await pay(api, alice, "foreign", amount="20.00")).json()["id"]
    await wait_status(api, alice, payment_id, "submitted")
    ours = await rail_payment(rail, payment_id)
    assert ours is not None
    foreign = [  # correctly signed, our reference, but not what we submitted
        {"rail_payment_id": ours["rail_payment_id"], "amount": 1, "currency": "EUR"},
        {"rail_payment_id": "rp_someone_else", "amount": 2_000, "currency": "EUR"},
        {"rail_payment_id": ours["rail_payment_id"], "amount": 2_000, "currency": "USD"},
    ]

    for n, fields in enumerate(foreign):
        body = {
            "event_id": f"evt_foreign_{n}_{uuid.uuid4().hex}",
            "type": "payment.settled",
            "reference": payment_id,
            "status": "settled",
            "occurred_at": "2026-01-01T00:00:00Z",
            **fields,
        }
        answer = await _post_signed(api, json.dumps(body).encode())
        assert answer.json() == {"received": True, "duplicate": False}
    async with sessions() as session:
        workflow_id = (await session.get(Payment, uuid.UUID(payment_id))).workflow_id  # type: ignore[union-attr]
    # The workflow applies the same check to a signal that does not come through the API.
    await temporal_client.get_workflow_handle(workflow_id).signal(
        "rail_event",
        RailPaymentSnapshot(
            rail_payment_id="rp_someone_else", status="settled", amount=2_000, currency="EUR"
        ),
    )
    await _signal_processed(temporal_client, workflow_id)

    assert (await wait_status(api, alice, payment_id, "submitted"))["source"] == "workflow"
    assert await balance(api, alice) == (FUNDS, 2_000, FUNDS - 2_000)
    assert len(await audit_actions(sessions, "webhook.foreign_outcome")) == 3
    settled = await rail.post(f"/v1/payments/{ours['rail_payment_id']}/settle")
    assert settled.status_code == 200, settled.text
    await wait_status(api, alice, payment_id, "completed")
    assert await balance(api, alice) == (FUNDS - 2_000, 0, FUNDS - 2_000)
    report = await verify_ledger(sessions)
    assert report.ok, report
