"""Linked external accounts end to end: API -> LinkAccountWorkflow -> rail simulator (real, on a
free port) and ledger; confirmation, wrong amounts, returned deposits, expiry after days on the
time-skipping server, foreign objects, bad IBANs, and no amount in the workflow history."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.ledger.verify import verify_ledger
from activities.linking import micro_deposit_reference
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.linking.tables import LinkedAccount, LinkStatus
from models.money import format_amount
from temporal.handles import handle_for
from temporal.ids import link_account_workflow_id
from tests import ledger_support
from tests.conftest import TEST_CONVERTER
from tests.flows import Customer, register_customer
from tests.rail_support import eventually, running_rail
from tests.replay_support import HISTORIES, recorded, replay
from tests.time_skipping_support import platform_on
from workflows.link_account import LinkAccountWorkflow

IBAN = "DE89 3704 0044 0532 0130 00"
RAIL_REJECTED_IBAN = "DE76999999990000000404"  # valid, but the simulator rejects it at settlement


@pytest.fixture
async def rail() -> AsyncIterator[httpx.AsyncClient]:
    """The rail simulator on a free loopback port (no webhooks: the workflow polls)."""
    async with running_rail(None) as client:
        yield client


@pytest.fixture
def link_budget() -> int:
    """New links a customer may start in 30 days (parametrize to lower it)."""
    return 10


@pytest.fixture
def settings(settings: Settings, rail: httpx.AsyncClient, link_budget: int) -> Settings:
    """Per-test settings pointing the activities at this test's simulator."""
    return settings.model_copy(
        update={"rail_url": str(rail.base_url), "link_attempts_per_30_days": link_budget}
    )


@pytest.fixture
async def alice(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer with a default EUR account."""
    return await register_customer(api, outbox, "alice@example.com")


async def _main_account(api: httpx.AsyncClient, who: Customer) -> str:
    return str((await api.get("/api/accounts", headers=who.auth)).json()["items"][0]["id"])


async def _link(
    api: httpx.AsyncClient, auth: dict[str, str], account_id: str, iban: str = IBAN
) -> httpx.Response:
    return await api.post(
        f"/api/accounts/{account_id}/link",
        headers=auth,
        json={"iban": iban, "holder_name": "Alice Example"},
    )


async def _rail_amounts(rail: httpx.AsyncClient, link_id: str) -> list[int]:
    """The two micro-deposits as the rail received them (what the customer sees at the bank)."""

    async def both() -> list[int] | None:
        amounts = []
        for n in (1, 2):
            got = await rail.get(
                f"/v1/payments/by-reference/{micro_deposit_reference(uuid.UUID(link_id), n)}"
            )
            if got.status_code != 200:
                return None
            amounts.append(int(got.json()["amount"]))
        return amounts

    return await eventually(both)


async def _link_state(
    api: httpx.AsyncClient, auth: dict[str, str], account_id: str, link_id: str
) -> dict[str, Any]:
    got = await api.get(f"/api/accounts/{account_id}/links/{link_id}", headers=auth)
    assert got.status_code == 200, got.text
    return dict(got.json())


async def _deposits_sent(
    api: httpx.AsyncClient, auth: dict[str, str], account_id: str, link_id: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        state = await _link_state(api, auth, account_id, link_id)
        return state if state["deposits"] not in (None, "sending") else None

    return await eventually(probe)


async def _until_status(
    api: httpx.AsyncClient, auth: dict[str, str], account_id: str, link_id: str, status: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        state = await _link_state(api, auth, account_id, link_id)
        return state if state["status"] == status and state["source"] == "database" else None

    return await eventually(probe, max_wait=10.0)


async def _confirm(
    api: httpx.AsyncClient, auth: dict[str, str], account_id: str, link_id: str, *amounts: str
) -> httpx.Response:
    return await api.post(
        f"/api/accounts/{account_id}/links/{link_id}/confirm",
        headers=auth,
        json={"amounts": list(amounts)},
    )


async def _system_balance(sessions: SessionFactory, kind: str) -> int:
    async with sessions() as session:
        posted = await session.scalar(
            text("SELECT posted FROM ledger_accounts WHERE kind = :k AND currency = 'EUR'"),
            {"k": kind},
        )
    return int(posted or 0)


def _walk(message: Message) -> Iterator[Payload | str]:
    """Every payload and every string field anywhere in a history proto."""
    if isinstance(message, Payload):
        yield message
        return
    for _, value in message.ListFields():
        items: list[Any]
        if isinstance(value, Message):
            items = [value]
        elif hasattr(value, "values") and callable(value.values):  # map field
            items = list(value.values())
        elif isinstance(value, str):
            items = [value]
        elif isinstance(value, bytes | int | float | bool):
            items = []
        else:  # repeated field
            items = list(value)
        for item in items:
            if isinstance(item, Message):
                yield from _walk(item)
            elif isinstance(item, str):
                yield item


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k), k  # the key itself is checked too
            yield from _leaves(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, key)
    else:
        yield key, value


COUNT_FIELDS = {"attempts_left", "max_attempts", "settled", "returned", "not_sent"}


def assert_amounts_absent(history: WorkflowHistory, amounts: list[int]) -> None:
    """No payload holds an amount (as minor units or decimal) and no text mentions one."""
    decimals = {format_amount(a, "EUR") for a in amounts}
    as_text = decimals | {str(a) for a in amounts}
    payloads = 0
    for event in history.events:
        for item in _walk(event):
            if isinstance(item, str):
                for d in decimals:
                    assert not re.search(rf"(?<![\d.]){re.escape(d)}(?!\d)", item), item
                continue
            payloads += 1
            try:
                decoded = json.loads(item.data)
            except ValueError:
                assert not any(d.encode() in item.data for d in decimals)
                continue
            for key, value in _leaves(decoded):
                assert "amount" not in key or key == "amounts_digest", (key, decoded)
                assert value not in as_text, (key, decoded)
                if isinstance(value, int) and not isinstance(value, bool):
                    assert value not in amounts or key in COUNT_FIELDS, (key, decoded)
    assert payloads > 5  # the walk did see the inputs, results and updates


async def test_link_then_confirm_the_rail_amounts_links_and_keeps_amounts_out_of_history(
    api: httpx.AsyncClient,
    alice: Customer,
    rail: httpx.AsyncClient,
    sessions: SessionFactory,
    temporal_client: Client,
) -> None:
    account_id = await _main_account(api, alice)

    started = await _link(api, alice.auth, account_id)
    assert started.status_code == 202, started.text
    body = started.json()
    link_id = body["linked_account_id"]
    assert body["status"] == "pending_confirmation"
    assert body["status_url"] == f"/api/accounts/{account_id}/links/{link_id}"
    amounts = await _rail_amounts(rail, link_id)
    live = await _deposits_sent(api, alice.auth, account_id, link_id)
    retried = await _link(api, alice.auth, account_id, IBAN.replace(" ", "").lower())
    listed = await api.get(f"/api/accounts/{account_id}/links", headers=alice.auth)
    wrong = await _confirm(
        api, alice.auth, account_id, link_id, *(format_amount(a % 99 + 1, "EUR") for a in amounts)
    )
    confirmed = await _confirm(
        api, alice.auth, account_id, link_id, *(format_amount(a, "EUR") for a in amounts[::-1])
    )
    final = await _until_status(api, alice.auth, account_id, link_id, "linked")
    again = await _link(api, alice.auth, account_id)

    assert all(1 <= a <= 99 for a in amounts)
    assert live["source"] == "workflow"
    assert live["status"] == "pending_confirmation"
    assert live["attempts_left"] == 3
    assert live["expires_at"] is not None
    assert retried.status_code == 200
    assert retried.json()["linked_account_id"] == link_id
    assert [i["id"] for i in listed.json()["items"]] == [link_id]
    assert listed.json()["items"][0]["iban_masked"] == "DE89 **** 3000"
    assert wrong.status_code == 400
    assert wrong.json()["attempts_left"] == 2
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "linked"
    assert final["status"] == "linked"
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-linked")
    # The bank paid the deposits from its fees account; the customer's balance is untouched.
    assert await _system_balance(sessions, "fees") == -sum(amounts)
    assert await _system_balance(sessions, "external_settlement") == sum(amounts)
    balance = (await api.get(f"/api/accounts/{account_id}/balance", headers=alice.auth)).json()
    assert balance["posted"]["amount_minor"] == 0
    assert (await verify_ledger(sessions)).ok
    handle = temporal_client.get_workflow_handle(link_account_workflow_id(uuid.UUID(link_id)))
    description = await handle.describe()
    assert description.search_attributes["VortexStatus"] == ["linked"]
    assert description.search_attributes["VortexUserId"]
    history = await handle.fetch_history()
    assert_amounts_absent(history, amounts)
    texts = [
        item if isinstance(item, str) else item.data.decode(errors="replace")
        for event in history.events
        for item in _walk(event)
    ]
    assert not [t for t in texts if IBAN.replace(" ", "") in t or "Alice Example" in t]
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "link_account_linked.json").write_text(history.to_json())
    await _replayer().replay_workflow(history)


def _replayer() -> Replayer:
    return Replayer(workflows=[LinkAccountWorkflow], data_converter=TEST_CONVERTER)


@pytest.mark.parametrize("path", recorded("LinkAccountWorkflow"), ids=lambda p: p.stem)
async def test_recorded_link_histories_still_replay(path: Path) -> None:
    await replay(path, LinkAccountWorkflow)


async def test_wrong_amounts_count_down_then_the_link_fails(
    api: httpx.AsyncClient, alice: Customer, rail: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    account_id = await _main_account(api, alice)
    link_id = (await _link(api, alice.auth, account_id)).json()["linked_account_id"]
    amounts = await _rail_amounts(rail, link_id)
    await _deposits_sent(api, alice.auth, account_id, link_id)
    wrong = [format_amount(a % 99 + 1, "EUR") for a in amounts]  # each one off

    too_big = await _confirm(api, alice.auth, account_id, link_id, "42", "0.10")
    malformed = await _confirm(api, alice.auth, account_id, link_id, "0.1x", "0.10")
    one = await _confirm(api, alice.auth, account_id, link_id, *wrong)
    two = await _confirm(api, alice.auth, account_id, link_id, *wrong)
    three = await _confirm(api, alice.auth, account_id, link_id, *wrong)
    final = await _until_status(api, alice.auth, account_id, link_id, "failed")
    late = await _confirm(
        api, alice.auth, account_id, link_id, *(format_amount(a, "EUR") for a in amounts)
    )

    assert too_big.status_code == 422
    assert malformed.status_code == 422
    assert [r.status_code for r in (one, two, three)] == [400, 400, 410]
    assert [r.json()["attempts_left"] for r in (one, two, three)] == [2, 1, 0]
    assert one.json()["type"].endswith("/wrong-amounts")
    assert three.json()["type"].endswith("/link-failed")
    assert final["status"] == "failed"
    assert late.status_code == 409
    assert late.json()["link_status"] == "failed"
    assert (await verify_ledger(sessions)).ok


async def test_a_deposit_returned_by_the_rail_fails_the_link_and_is_reversed(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory, temporal_client: Client
) -> None:
    account_id = await _main_account(api, alice)
    started = await _link(api, alice.auth, account_id, RAIL_REJECTED_IBAN)
    link_id = started.json()["linked_account_id"]

    final = await _until_status(api, alice.auth, account_id, link_id, "failed")
    result = await handle_for(
        temporal_client, LinkAccountWorkflow.run, link_account_workflow_id(uuid.UUID(link_id))
    ).result()

    assert started.status_code == 202
    assert final["status"] == "failed"
    assert result.deposits == "returned"
    assert result.failure_reason is not None
    assert "AC04" in result.failure_reason
    assert await _system_balance(sessions, "fees") == 0  # booked, then reversed
    assert (await verify_ledger(sessions)).ok


async def test_another_customers_account_or_link_is_not_found(
    api: httpx.AsyncClient, alice: Customer, outbox: MemoryEmailBackend
) -> None:
    bob = await register_customer(api, outbox, "bob@example.com")
    alice_account, bob_account = await _main_account(api, alice), await _main_account(api, bob)
    link_id = (await _link(api, alice.auth, alice_account)).json()["linked_account_id"]
    base = f"/api/accounts/{alice_account}"

    responses = [
        await _link(api, bob.auth, alice_account),
        await api.get(f"{base}/links", headers=bob.auth),
        await api.get(f"{base}/links/{link_id}", headers=bob.auth),
        await _confirm(api, bob.auth, alice_account, link_id, "0.10", "0.20"),
        await api.get(f"/api/accounts/{bob_account}/links/{link_id}", headers=bob.auth),
        await _confirm(api, bob.auth, bob_account, link_id, "0.10", "0.20"),
        await api.get(f"{base}/links/{uuid.uuid4()}", headers=alice.auth),
    ]

    assert [r.status_code for r in responses] == [404] * len(responses)
    assert all(r.json()["type"].endswith("/not-found") for r in responses)


BAD_LINK_BODIES: list[dict[str, str]] = [
    {"iban": "DE89 3704 0044 0532 0130 01", "holder_name": "Alice"},  # check digits
    {"iban": "DE89 3704 0044 0532 0130", "holder_name": "Alice"},  # German length
    {"iban": "DE89 3704 0044 0532 0130 0!", "holder_name": "Alice"},  # character
    {"iban": "not an iban at all", "holder_name": "Alice"},
    {"iban": IBAN, "holder_name": "   "},
    {"iban": IBAN},
]


async def test_bad_link_requests_are_422_and_create_nothing(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory
) -> None:
    account_id = await _main_account(api, alice)

    responses = [
        await api.post(f"/api/accounts/{account_id}/link", headers=alice.auth, json=body)
        for body in BAD_LINK_BODIES
    ]

    assert [r.status_code for r in responses] == [422] * len(BAD_LINK_BODIES)
    assert [r.json()["type"].rsplit("/", 1)[1] for r in responses[:4]] == ["invalid-iban"] * 4
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM linked_accounts")) == 0


async def test_an_unconfirmed_link_expires_after_the_configured_days(
    time_skipping: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    client = time_skipping.client
    user_id = await ledger_support.new_user(sessions, "carol")
    account = await ledger_support.open_account(sessions, user_id)
    account_id = str(account.account_id)
    async with platform_on(time_skipping, settings, sessions, outbox) as (api, services):
        token, _ = services.tokens.issue(user_id, "access", 900, sid=str(uuid.uuid4()))
        auth = {"Authorization": f"Bearer {token}"}
        link_id = (await _link(api, auth, account_id)).json()["linked_account_id"]
        await _deposits_sent(api, auth, account_id, link_id)
        handle = handle_for(
            client, LinkAccountWorkflow.run, link_account_workflow_id(uuid.UUID(link_id))
        )

        await time_skipping.sleep(timedelta(days=settings.link_confirmation_days, hours=1))
        result = await handle.result()
        late = await _confirm(api, auth, account_id, link_id, "0.10", "0.20")

        assert result.status == LinkStatus.EXPIRED
        async with sessions() as session:
            row = await session.get(LinkedAccount, uuid.UUID(link_id))
        assert row is not None
        assert row.status == LinkStatus.EXPIRED
        assert late.status_code == 409
        assert late.json()["link_status"] == "expired"
        assert (await verify_ledger(sessions)).ok


@pytest.mark.parametrize("link_budget", [2])
async def test_links_past_the_30_day_budget_are_refused_before_any_deposit_is_sent(
    api: httpx.AsyncClient,
    alice: Customer,
    rail: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    account_id = await _main_account(api, alice)
    first = await _link(api, alice.auth, account_id, IBAN)
    second = await _link(api, alice.auth, account_id, "GB82 WEST 1234 5698 7654 32")
    retry = await _link(api, alice.auth, account_id, IBAN)  # the pending link again: no new cost
    async with sessions() as session:
        before = (await session.execute(text("SELECT count(*) FROM linked_accounts"))).scalar()

    third = await _link(api, alice.auth, account_id, "FR14 2004 1010 0505 0001 3M02 606")

    async with sessions() as session:
        after = (await session.execute(text("SELECT count(*) FROM linked_accounts"))).scalar()
    assert [first.status_code, second.status_code, retry.status_code] == [202, 202, 200]
    assert third.status_code == 429, third.text
    assert third.json()["type"].endswith("/too-many-link-attempts")
    assert third.headers["retry-after"] == "86400"
    assert before == after == 2
