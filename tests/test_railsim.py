"""The payment rail simulator served for real (uvicorn on loopback) with a recording receiver."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from activities.providers.rail import RailInboundEvent, RailPaymentEvent, parse_rail_event
from core.embedded import free_port
from core.signatures import SIGNATURE_HEADER, sign, verify
from railsim.engine import RailSimulator, UnavailableError
from railsim.models import REJECT_IBANS, RailConfig
from tests.rail_support import (
    RAIL_SECRET,
    ReceivedWebhook,
    WebhookReceiver,
    eventually,
    payment_body,
    running_rail,
    running_rail_and_receiver,
)

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
async def live() -> AsyncIterator[tuple[httpx.AsyncClient, WebhookReceiver]]:
    """A live simulator (client) calling back a live webhook receiver."""
    async with running_rail_and_receiver() as pair:
        yield pair


@pytest.fixture
def rail(live: tuple[httpx.AsyncClient, WebhookReceiver]) -> httpx.AsyncClient:
    """Client of the live simulator."""
    return live[0]


@pytest.fixture
def receiver(live: tuple[httpx.AsyncClient, WebhookReceiver]) -> WebhookReceiver:
    """The live webhook receiver."""
    return live[1]


@pytest.fixture(scope="module")
async def stateless_rail() -> AsyncIterator[httpx.AsyncClient]:
    """One simulator (no webhooks) shared by tests that change nothing in it."""
    async with running_rail(None) as client:
        yield client


def _ref() -> str:
    return f"pay-{uuid.uuid4().hex}"


async def _webhook_for(receiver: WebhookReceiver, **match: Any) -> ReceivedWebhook:
    async def probe() -> ReceivedWebhook | None:
        found = receiver.events(**match)
        return found[0] if found else None

    return await eventually(probe)


async def _final(rail: httpx.AsyncClient, rail_payment_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await rail.get(f"/v1/payments/{rail_payment_id}")).json()
        return body if body["status"] != "pending" else None

    return await eventually(probe)


async def _delivery(rail: httpx.AsyncClient, event_id: str, state: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await rail.get(f"/v1/webhooks/{event_id}")).json()
        return body if body["state"] == state else None

    return await eventually(probe)


def _signed(hook: ReceivedWebhook) -> bool:
    return verify(RAIL_SECRET, hook.body, hook.headers.get(SIGNATURE_HEADER.lower()), time.time())


async def test_submit_settles_and_sends_a_signed_webhook(
    rail: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    reference = _ref()
    created = await rail.post("/v1/payments", json=payment_body(reference))
    assert created.status_code == 202
    payment = created.json()
    assert payment["status"] == "pending"
    assert payment["reference"] == reference
    assert payment["creditor_iban"] == "DE89370400440532013000"  # normalised
    assert payment["completed_at"] is None

    hook = await _webhook_for(receiver, reference=reference)
    assert _signed(hook)
    event = parse_rail_event(hook.body)
    assert isinstance(event, RailPaymentEvent)
    assert event.type == "payment.settled"
    assert event.status == "settled"
    assert event.reason is None
    assert event.rail_payment_id == payment["rail_payment_id"]
    assert hook.headers["x-rail-event-id"] == event.event_id

    by_id = (await rail.get(f"/v1/payments/{payment['rail_payment_id']}")).json()
    by_reference = (await rail.get(f"/v1/payments/by-reference/{reference}")).json()
    assert by_id == by_reference
    assert by_id["status"] == "settled"
    assert by_id["completed_at"] is not None
    delivery = await _delivery(rail, event.event_id, "delivered")
    assert delivery["attempts"] == 1


async def test_resubmission_returns_the_same_payment(
    rail: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    reference = _ref()
    first = await rail.post("/v1/payments", json=payment_body(reference))
    again = await rail.post("/v1/payments", json=payment_body(reference))
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["rail_payment_id"] == first.json()["rail_payment_id"]

    await _webhook_for(receiver, reference=reference)
    later = await rail.post("/v1/payments", json=payment_body(reference))
    assert later.json()["rail_payment_id"] == first.json()["rail_payment_id"]
    assert later.json()["status"] == "settled"
    assert len((await rail.get("/v1/webhooks")).json()) == 1  # one payment, one event
    assert len(receiver.events(reference=reference)) == 1


async def test_same_reference_with_another_body_is_a_conflict(rail: httpx.AsyncClient) -> None:
    reference = _ref()
    first = await rail.post("/v1/payments", json=payment_body(reference))
    clash = await rail.post("/v1/payments", json=payment_body(reference, amount=1))
    assert clash.status_code == 409
    assert clash.headers["content-type"].startswith(PROBLEM_JSON)
    problem = clash.json()
    assert problem["type"].endswith("/conflict")
    assert problem["payment"]["rail_payment_id"] == first.json()["rail_payment_id"]
    assert problem["payment"]["amount"] == 12_345


@pytest.mark.parametrize(
    ("overrides", "reason_code"),
    [
        ({"creditor_iban": sorted(REJECT_IBANS)[0]}, "AC04"),
        ({"creditor_name": "Please Reject Me Ltd"}, "AG01"),
    ],
    ids=["reject-list-iban", "reject-in-name"],
)
async def test_deterministic_rejections(
    rail: httpx.AsyncClient,
    receiver: WebhookReceiver,
    overrides: dict[str, str],
    reason_code: str,
) -> None:
    reference = _ref()
    created = await rail.post("/v1/payments", json=payment_body(reference, **overrides))
    assert created.status_code == 202
    hook = await _webhook_for(receiver, reference=reference)
    assert _signed(hook)
    event = parse_rail_event(hook.body)
    assert isinstance(event, RailPaymentEvent)
    assert (event.type, event.status) == ("payment.rejected", "rejected")
    assert event.reason is not None
    assert event.reason.startswith(reason_code)
    assert (await _final(rail, event.rail_payment_id))["reason"] == event.reason


async def test_reject_rate_and_forced_outcomes(
    rail: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    control = await rail.post("/v1/control", json={"reject_rate": 1.0})
    assert control.json()["reject_rate"] == 1.0
    random_reject = _ref()
    await rail.post("/v1/payments", json=payment_body(random_reject))
    assert (await _webhook_for(receiver, reference=random_reject)).json["status"] == "rejected"

    await rail.post("/v1/control", json={"reject_rate": 0.0, "settle_delay_seconds": 3600})
    forced_reject, forced_settle = _ref(), _ref()
    to_reject = (await rail.post("/v1/payments", json=payment_body(forced_reject))).json()
    to_settle = (await rail.post("/v1/payments", json=payment_body(forced_settle))).json()
    rejected = await rail.post(
        f"/v1/payments/{to_reject['rail_payment_id']}/reject", json={"reason": "AC01 bad account"}
    )
    assert rejected.json()["status"] == "rejected"
    settled = await rail.post(f"/v1/payments/{to_settle['rail_payment_id']}/settle")
    assert settled.json()["status"] == "settled"
    assert (await rail.post(f"/v1/payments/{to_settle['rail_payment_id']}/settle")).is_success
    assert (
        await rail.post(f"/v1/payments/{to_settle['rail_payment_id']}/reject")
    ).status_code == 409

    assert (await _webhook_for(receiver, reference=forced_reject)).json[
        "reason"
    ] == "AC01 bad account"
    assert (await _webhook_for(receiver, reference=forced_settle)).json["type"] == "payment.settled"


async def test_cancel_while_pending_and_conflict_once_settled(
    rail: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await rail.post("/v1/control", json={"settle_delay_seconds": 3600})
    pending = (await rail.post("/v1/payments", json=payment_body(_ref()))).json()
    pid = pending["rail_payment_id"]
    cancelled = await rail.post(f"/v1/payments/{pid}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (await rail.post(f"/v1/payments/{pid}/cancel")).json()["status"] == "cancelled"
    assert (await rail.post(f"/v1/payments/{pid}/settle")).status_code == 409

    other_ref = _ref()
    other = (await rail.post("/v1/payments", json=payment_body(other_ref))).json()
    await rail.post(f"/v1/payments/{other['rail_payment_id']}/settle")
    late = await rail.post(f"/v1/payments/{other['rail_payment_id']}/cancel")
    assert late.status_code == 409
    assert late.headers["content-type"].startswith(PROBLEM_JSON)
    assert late.json()["payment"]["status"] == "settled"

    await _webhook_for(receiver, reference=other_ref)  # the settled one is announced ...
    assert receiver.events(reference=pending["reference"]) == []  # ... a cancelled one is not
    assert (await rail.get(f"/v1/payments/{pid}")).json()["status"] == "cancelled"
    assert (await rail.post("/v1/payments/rp_unknown/cancel")).status_code == 404


async def test_shorter_delay_applies_to_pending_payments(rail: httpx.AsyncClient) -> None:
    await rail.post("/v1/control", json={"settle_delay_seconds": 3600})
    pid = (await rail.post("/v1/payments", json=payment_body(_ref()))).json()["rail_payment_id"]
    assert (await rail.get(f"/v1/payments/{pid}")).json()["status"] == "pending"
    await rail.post("/v1/control", json={"settle_delay_seconds": 0})
    assert (await _final(rail, pid))["status"] == "settled"


async def test_transient_failures_record_nothing(rail: httpx.AsyncClient) -> None:
    reference = _ref()
    await rail.post("/v1/control", json={"transient_failure_rate": 1.0})
    failed = await rail.post("/v1/payments", json=payment_body(reference))
    assert failed.status_code == 503
    assert failed.headers["content-type"].startswith(PROBLEM_JSON)
    assert failed.headers["retry-after"] == "1"
    assert (await rail.get(f"/v1/payments/by-reference/{reference}")).status_code == 503
    assert (await rail.get("/health")).status_code == 200  # control plane never fails

    await rail.post("/v1/control", json={"transient_failure_rate": 0.0})
    assert (await rail.get(f"/v1/payments/by-reference/{reference}")).status_code == 404
    assert (await rail.post("/v1/payments", json=payment_body(reference))).status_code == 202


async def test_webhook_is_retried_after_a_500(
    rail: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    receiver.fail_next = 2
    reference = _ref()
    await rail.post("/v1/payments", json=payment_body(reference))

    async def three_attempts() -> list[ReceivedWebhook] | None:
        hooks = receiver.events(reference=reference)
        return hooks if len(hooks) == 3 else None

    hooks = await eventually(three_attempts)
    assert {h.json["event_id"] for h in hooks} == {hooks[0].json["event_id"]}
    assert [h.headers["x-rail-delivery-attempt"] for h in hooks] == ["1", "2", "3"]
    assert all(_signed(h) for h in hooks)
    delivery = await _delivery(rail, hooks[0].json["event_id"], "delivered")
    assert delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200


async def test_webhook_delivery_gives_up_after_bounded_attempts() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    async with running_rail(nowhere, webhook_max_attempts=3) as rail:
        pid = (await rail.post("/v1/payments", json=payment_body(_ref()))).json()["rail_payment_id"]
        await _final(rail, pid)
        event_id = (await rail.get("/v1/webhooks")).json()[0]["event_id"]
        delivery = await _delivery(rail, event_id, "failed")
    assert delivery["attempts"] == 3
    assert delivery["last_status_code"] is None
    assert "ConnectError" in delivery["last_error"]


async def test_redeliver_sends_the_same_event_again(
    rail: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    reference = _ref()
    await rail.post("/v1/payments", json=payment_body(reference))
    first = await _webhook_for(receiver, reference=reference)
    event_id = first.json["event_id"]
    await _delivery(rail, event_id, "delivered")
    assert (await rail.post(f"/v1/webhooks/{event_id}/redeliver")).status_code == 202

    async def two_copies() -> list[ReceivedWebhook] | None:
        hooks = receiver.events(event_id=event_id)
        return hooks if len(hooks) == 2 else None

    copies = await eventually(two_copies)
    assert copies[0].body == copies[1].body
    assert all(_signed(h) for h in copies)


async def test_inbound_payment_sends_a_signed_webhook(
    rail: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    body = {
        "to_account_number": "VX-12345678",
        "amount": 50_00,
        "currency": "GBP",
        "debtor_name": "Grace Hopper",
        "debtor_iban": "GB33BUKB20201555555555",
        "reference": "rent march",
    }
    accepted = await rail.post("/v1/inbound", json=body)
    assert accepted.status_code == 202
    ids = accepted.json()
    hook = await _webhook_for(receiver, event_id=ids["event_id"])
    assert _signed(hook)
    event = parse_rail_event(hook.body)
    assert isinstance(event, RailInboundEvent)
    assert event.type == "inbound.received"
    assert event.inbound_id == ids["inbound_id"]
    assert (event.to_account_number, event.amount, event.currency) == ("VX-12345678", 5000, "GBP")
    assert (event.debtor_name, event.debtor_iban, event.reference) == (
        "Grace Hopper",
        "GB33BUKB20201555555555",
        "rent march",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": 0},
        {"amount": 10.5},
        {"amount": "100"},
        {"currency": "eur"},
        {"creditor_iban": "not an iban"},
        {"reference": "has/slash"},
        {"creditor_name": ""},
        {"unexpected": 1},
    ],
)
async def test_invalid_payments_are_422(
    stateless_rail: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    response = await stateless_rail.post("/v1/payments", json={**payment_body(_ref()), **overrides})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["errors"]


async def test_control_validates_rates(stateless_rail: httpx.AsyncClient) -> None:
    rail = stateless_rail
    assert (await rail.post("/v1/control", json={"reject_rate": 1.5})).status_code == 422
    assert (await rail.post("/v1/control", json={"settle_delay_seconds": -1})).status_code == 422
    current = (await rail.get("/v1/control")).json()
    assert current == {
        "settle_delay_seconds": 0.05,
        "transient_failure_rate": 0.0,
        "reject_rate": 0.0,
    }


def test_seeded_randomness_is_reproducible() -> None:
    def failures(seed: int) -> list[bool]:
        sim = RailSimulator(RailConfig(webhook_secret="s", transient_failure_rate=0.5, seed=seed))
        outcomes = []
        for _ in range(32):
            try:
                sim.maybe_fail()
                outcomes.append(False)
            except UnavailableError:
                outcomes.append(True)
        return outcomes

    outcomes = failures(7)
    assert outcomes == failures(7)
    assert any(outcomes)
    assert not all(outcomes)


# --- signatures -------------------------------------------------------------------------------

BODY = b'{"event_id":"evt_1","type":"payment.settled"}'
NOW = 1_760_000_000


def test_signature_round_trip() -> None:
    header = sign("secret", BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify("secret", BODY, header, now=NOW + 10)
    assert verify(b"secret", BODY, header, now=NOW - 10)


def test_signature_refuses_a_tampered_body() -> None:
    header = sign("secret", BODY, NOW)
    assert not verify("secret", BODY.replace(b"settled", b"rejected"), header, now=NOW)
    assert not verify("secret", BODY + b" ", header, now=NOW)


def test_signature_refuses_the_wrong_secret() -> None:
    assert not verify("other-secret", BODY, sign("secret", BODY, NOW), now=NOW)


def test_signature_refuses_stale_and_future_timestamps() -> None:
    header = sign("secret", BODY, NOW)
    assert verify("secret", BODY, header, now=NOW + 300)
    assert not verify("secret", BODY, header, now=NOW + 301)
    assert not verify("secret", BODY, header, now=NOW - 301)
    assert not verify("secret", BODY, header, now=NOW + 61, tolerance_seconds=60)


def test_signature_refuses_a_moved_timestamp() -> None:
    digest = sign("secret", BODY, NOW).split("v1=")[1]
    assert not verify("secret", BODY, f"t={NOW + 5},v1={digest}", now=NOW)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", f"t={NOW}", "v1=abc", "t=abc,v1=00", f"t={NOW},t={NOW},v1=00", "t=,v1="],
)
def test_signature_refuses_malformed_headers(header: str | None) -> None:
    assert not verify("secret", BODY, header, now=NOW)


def test_signature_accepts_any_of_several_v1_entries() -> None:
    good = sign("secret", BODY, NOW).split("v1=")[1]
    assert verify("secret", BODY, f"t={NOW},v1={'0' * 64},v1={good}", now=NOW)
