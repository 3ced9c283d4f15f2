"""The card processor feed end to end: signed events book card and cash transactions once per
event (and once per external id), through RecordExternalTransactionWorkflow; unsigned, forged,
stale and malformed deliveries are refused and audited, and change nothing."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from api.auth.sessions import SessionService
from api.services import Services
from core.db import SessionFactory
from core.signatures import PROCESSOR_SIGNATURE_HEADER, sign
from models.audit import AuditEvent
from models.ledger.tables import Direction
from processorsim import ProcessorFeed, processor_event
from temporal import search_attributes
from temporal.ids import external_transaction_workflow_id
from tests.flows import fund
from tests.ledger_support import assert_ledger_ok, new_user, open_account, snapshot


class Holder:
    """A customer with an EUR account, as the processor knows it (by account number)."""

    def __init__(self, user_id: uuid.UUID, account_id: str, number: str, token: str) -> None:
        self.user_id, self.account_id, self.number = user_id, account_id, number
        self.auth = {"Authorization": f"Bearer {token}"}


async def _holder(api: httpx.AsyncClient, services: Services, name: str) -> Holder:
    user_id = await new_user(services.sessions, name)
    await open_account(services.sessions, user_id, "EUR", "Main account")
    token = (await SessionService(services).issue_session(user_id)).access_token
    account = (await api.get("/api/accounts", headers={"Authorization": f"Bearer {token}"})).json()
    first = account["items"][0]
    return Holder(user_id, str(first["id"]), str(first["number"]), token)


@pytest.fixture
async def alice(api: httpx.AsyncClient, services: Services) -> Holder:
    """A card holder with an empty EUR account."""
    return await _holder(api, services, "alice")


@pytest.fixture
def feed(api: httpx.AsyncClient, services: Services) -> ProcessorFeed:
    """The processor simulator, delivering to this test's API with the configured secret."""
    return ProcessorFeed(api, services.settings.processor_webhook_secret.get_secret_value())


async def _balance(api: httpx.AsyncClient, who: Holder) -> int:
    body = (await api.get(f"/api/accounts/{who.account_id}/balance", headers=who.auth)).json()
    return int(body["posted"]["amount_minor"])


async def _audit(sessions: SessionFactory, prefix: str) -> list[AuditEvent]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent)
            .where(col(AuditEvent.action).startswith(prefix))
            .order_by(col(AuditEvent.id))
        )
        return list(rows.scalars())


def _event(who: Holder, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "evt-0001",
        "account_number": who.number,
        "external_id": "card-auth-0001",
        "amount": "12.34",
        "currency": "EUR",
        "direction": "debit",
        "merchant": "Lidl Berlin",
        "description": "Card payment",
    } | overrides


def _problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(f"/{slug}"), response.text


async def _deliver(feed: ProcessorFeed, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body).encode()
    return await feed.post_raw(raw, feed.signed(raw))


async def test_a_signed_event_books_once_and_redeliveries_do_not_book_again(
    api: httpx.AsyncClient,
    alice: Holder,
    feed: ProcessorFeed,
    sessions: SessionFactory,
    temporal_client: Client,
) -> None:
    await fund(sessions, alice.account_id, 10_000, "EUR")

    first = await _deliver(feed, _event(alice))
    replay = await _deliver(feed, _event(alice))
    # The same transaction under a second event id (a processor retry with a new delivery id).
    again = await _deliver(feed, _event(alice, event_id="evt-0002"))
    other_body = await _deliver(feed, _event(alice, event_id="evt-0003", amount="12.35"))
    handle = temporal_client.get_workflow_handle(
        external_transaction_workflow_id(uuid.UUID(alice.account_id), "card-auth-0001")
    )
    attributes = (await handle.describe()).typed_search_attributes
    state = await handle.query("status")
    balance = await _balance(api, alice)

    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "recorded"
    tid = first.json()["transaction_id"]
    assert replay.json() == {
        "received": True,
        "duplicate": True,
        "outcome": None,
        "transaction_id": None,
        "reason": None,
    }
    assert again.json()["outcome"] == "recorded"
    assert again.json()["transaction_id"] == tid
    assert other_body.json()["outcome"] == "declined"
    assert other_body.json()["reason"] == "idempotency-key-reused"
    assert balance == 10_000 - 1234
    view = (await api.get(f"/api/transactions/{tid}", headers=alice.auth)).json()
    assert view["status"] == "posted"
    assert view["kind"] == "card"
    assert view["category"] == "groceries"
    assert view["merchant"] == view["counterparty"] == "Lidl Berlin"
    assert view["external_id"] == "card-auth-0001"
    assert attributes.get(search_attributes.USER_ID) == str(alice.user_id)
    assert attributes.get(search_attributes.AMOUNT) == 1235  # the last run: the refused one
    assert state["status"] == "rejected"
    assert state["reason"] == "IdempotencyKeyReused"
    actions = [a.action for a in await _audit(sessions, "processor.")]
    assert actions == [
        "processor.recorded",
        "processor.duplicate",
        "processor.recorded",
        "processor.declined",
    ]
    await assert_ledger_ok(sessions)


async def test_credits_need_no_funds_and_cash_is_categorized(
    api: httpx.AsyncClient, alice: Holder, feed: ProcessorFeed
) -> None:
    refund = await feed.send(
        processor_event(
            alice.number,
            "25.00",
            "EUR",
            direction=Direction.CREDIT,
            merchant="Zalando",
            description="Refund",
        )
    )
    cash = await feed.send(
        processor_event(
            alice.number,
            "20.00",
            "EUR",
            kind="cash",
            merchant="ATM Alexanderplatz",
            occurred_at=datetime(2024, 3, 11, 7, 30, tzinfo=UTC),
        )
    )
    dining = await feed.send(
        processor_event(alice.number, "3.5", "EUR", merchant="Lidl", category="dining")
    )

    assert refund.outcome == cash.outcome == dining.outcome == "recorded"
    views = {
        t["id"]: t for t in (await api.get("/api/transactions", headers=alice.auth)).json()["items"]
    }
    assert views[str(cash.transaction_id)]["category"] == "cash"
    assert views[str(cash.transaction_id)]["occurred_at"].startswith("2024-03-11T07:30:00")
    assert views[str(dining.transaction_id)]["category"] == "dining"
    assert views[str(dining.transaction_id)]["amount"]["amount_minor"] == 350
    assert await _balance(api, alice) == 2500 - 2000 - 350


async def test_unsigned_forged_stale_and_tampered_deliveries_are_refused_and_audited(
    api: httpx.AsyncClient,
    alice: Holder,
    feed: ProcessorFeed,
    services: Services,
    sessions: SessionFactory,
) -> None:
    before = await snapshot(sessions)
    raw = json.dumps(_event(alice, direction="credit", amount="5000.00")).encode()
    now = int(time.time())

    unsigned = await feed.post_raw(raw, {"Content-Type": "application/json"})
    forged = await feed.post_raw(raw, {PROCESSOR_SIGNATURE_HEADER: sign("guess", raw, now)})
    stale = await feed.post_raw(raw, feed.signed(raw, at=now - 3600))
    tampered = await feed.post_raw(raw.replace(b"5000.00", b"9000.00"), feed.signed(raw))
    garbage = await feed.post_raw(raw, {PROCESSOR_SIGNATURE_HEADER: "t=abc,v1=zz"})
    # The rail's secret is not the processor's: a rail-signed body is no processor event.
    rail_secret = services.settings.rail_webhook_secret.get_secret_value()
    rail_signed = await feed.post_raw(
        raw, {PROCESSOR_SIGNATURE_HEADER: sign(rail_secret, raw, now)}
    )
    with_customer_token = await api.post(
        "/api/processor/events", headers=alice.auth, json=_event(alice, direction="credit")
    )

    for response in (unsigned, forged, stale, tampered, garbage, rail_signed, with_customer_token):
        _problem(response, 401, "invalid-processor-signature")
    after = await snapshot(sessions)
    rejected = await _audit(sessions, "processor.rejected")
    assert len(rejected) == 7
    bad = "invalid or stale signature"
    assert [r.details["reason"] for r in rejected] == ["unsigned", *[bad] * 5, "unsigned"]
    after["audit"] = before["audit"]
    assert after == before
    assert await _balance(api, alice) == 0


async def test_malformed_and_invalid_events_are_refused_audited_and_change_nothing(
    api: httpx.AsyncClient, alice: Holder, feed: ProcessorFeed, sessions: SessionFactory
) -> None:
    await fund(sessions, alice.account_id, 10_000, "EUR")
    before = await snapshot(sessions)

    async def deliver(**overrides: Any) -> httpx.Response:
        return await _deliver(feed, _event(alice, **overrides))

    _problem(
        await feed.post_raw(b"{not json", feed.signed(b"{not json")),
        400,
        "malformed-processor-event",
    )
    _problem(await deliver(amount=12.5), 400, "malformed-processor-event")
    _problem(await deliver(kind="wire"), 400, "malformed-processor-event")
    _problem(await deliver(direction="sideways"), 400, "malformed-processor-event")
    _problem(await deliver(event_id=""), 400, "malformed-processor-event")
    _problem(await deliver(event_id="x" * 81), 400, "malformed-processor-event")
    _problem(await deliver(external_id=" "), 400, "malformed-processor-event")
    _problem(await deliver(occurred_at="2024-03-01T10:00:00"), 400, "malformed-processor-event")
    _problem(await deliver(balance="100"), 400, "malformed-processor-event")
    _problem(await deliver(external_id="memo:abc"), 400, "malformed-processor-event")
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    _problem(await deliver(occurred_at=future), 400, "malformed-processor-event")
    for bad in ("1.234", "0", "-5.00", "abc", "10000000000000.01"):
        _problem(await deliver(amount=bad), 422, "invalid-amount")
    _problem(await deliver(currency="XYZ"), 422, "unknown-currency")
    _problem(await deliver(category="gambling"), 422, "invalid-category")

    rejected = await _audit(sessions, "processor.rejected")
    after = await snapshot(sessions)
    assert len(rejected) == 18
    after["audit"] = before["audit"]
    assert after == before
    # Nothing was stored under those event ids: a corrected redelivery is booked.
    fixed = await deliver()
    assert fixed.json()["outcome"] == "recorded"


async def test_refused_bookings_are_declined_and_unknown_accounts_unmatched(
    api: httpx.AsyncClient, alice: Holder, feed: ProcessorFeed, sessions: SessionFactory
) -> None:
    await fund(sessions, alice.account_id, 1_000, "EUR")
    usd = await api.post(
        "/api/accounts", headers=alice.auth, json={"currency": "USD", "name": "Travel"}
    )
    closed = await api.post(
        "/api/accounts", headers=alice.auth, json={"currency": "EUR", "name": "Old"}
    )
    assert (
        await api.delete(f"/api/accounts/{closed.json()['id']}", headers=alice.auth)
    ).status_code == 200

    too_much = await _deliver(feed, _event(alice, event_id="e1", amount="10.01"))
    other_currency = await _deliver(
        feed, _event(alice, event_id="e2", account_number=usd.json()["number"])
    )
    on_closed = await _deliver(
        feed, _event(alice, event_id="e3", account_number=closed.json()["number"])
    )
    unknown = await _deliver(feed, _event(alice, event_id="e4", account_number="000000000000"))
    duplicate_unknown = await _deliver(
        feed, _event(alice, event_id="e4", account_number="000000000000")
    )

    assert too_much.json()["outcome"] == "declined"
    assert too_much.json()["reason"] == "insufficient-funds"
    assert other_currency.json()["reason"] == "currency-mismatch"
    assert on_closed.json()["reason"] == "account-closed"
    assert unknown.json()["outcome"] == "unmatched"
    assert duplicate_unknown.json()["duplicate"] is True
    assert await _balance(api, alice) == 1_000
    declined = await _audit(sessions, "processor.declined")
    assert [d.details["reason"] for d in declined] == [
        "insufficient-funds",
        "currency-mismatch",
        "account-closed",
    ]
    assert [a.action for a in await _audit(sessions, "processor.unmatched")] == [
        "processor.unmatched"
    ]
    await assert_ledger_ok(sessions)
