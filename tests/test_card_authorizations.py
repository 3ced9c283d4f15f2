"""Card authorisations through the processor feed: an authorisation holds money (or is
declined), its clearing captures up to the authorised amount and releases the rest, a reversal
or a lapse releases it; every redelivery is idempotent and the ledger verifies."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from api.auth.sessions import SessionService
from api.services import Services
from core.db import SessionFactory
from processorsim import ProcessorFeed, card_authorization, card_clearing
from temporal import search_attributes
from temporal.ids import card_authorization_workflow_id
from tests.flows import fund
from tests.ledger_support import assert_ledger_ok, new_user, open_account
from tests.rail_support import eventually
from tests.replay_support import HISTORIES, recorded, replay, replay_history
from workflows.card_authorization import CardAuthorizationWorkflow


class Holder:
    """A card holder's EUR account, known to the processor by its number."""

    def __init__(self, account_id: str, number: str, token: str) -> None:
        self.account_id, self.number = account_id, number
        self.auth = {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def alice(api: httpx.AsyncClient, services: Services, sessions: SessionFactory) -> Holder:
    """A card holder with 100.00 EUR."""
    user_id = await new_user(services.sessions, "alice")
    opened = await open_account(services.sessions, user_id, "EUR", "Main")
    await fund(sessions, str(opened.account_id), 10_000, "EUR")
    token = (await SessionService(services).issue_session(user_id)).access_token
    return Holder(str(opened.account_id), opened.number, token)


@pytest.fixture
def feed(api: httpx.AsyncClient, services: Services) -> ProcessorFeed:
    """The processor simulator, signing with this test's secret."""
    return ProcessorFeed(api, services.settings.processor_webhook_secret.get_secret_value())


async def _send(feed: ProcessorFeed, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    response = await feed.post_raw(raw, feed.signed(raw))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _authorization(who: Holder, auth_id: str = "auth-1", **overrides: Any) -> dict[str, Any]:
    return {
        "type": "authorization.created",
        "event_id": f"evt-{uuid.uuid4().hex}",
        "account_number": who.number,
        "authorization_id": auth_id,
        "amount": "30.00",
        "currency": "EUR",
        "merchant": "Shell",
        "description": "Fuel",
    } | overrides


def _clearing(who: Holder, auth_id: str = "auth-1", **overrides: Any) -> dict[str, Any]:
    return {
        "type": "authorization.cleared",
        "event_id": f"evt-{uuid.uuid4().hex}",
        "account_number": who.number,
        "authorization_id": auth_id,
        "clearing_id": "clr-1",
        "amount": "27.45",
    } | overrides


def _reversal(who: Holder, auth_id: str = "auth-1") -> dict[str, Any]:
    return {
        "type": "authorization.reversed",
        "event_id": f"evt-{uuid.uuid4().hex}",
        "account_number": who.number,
        "authorization_id": auth_id,
    }


async def _balance(api: httpx.AsyncClient, who: Holder) -> tuple[int, int]:
    body = (await api.get(f"/api/accounts/{who.account_id}/balance", headers=who.auth)).json()
    return int(body["posted"]["amount_minor"]), int(body["held"]["amount_minor"])


async def _transaction(api: httpx.AsyncClient, who: Holder, tid: str) -> dict[str, Any]:
    found: dict[str, Any] = (await api.get(f"/api/transactions/{tid}", headers=who.auth)).json()
    return found


async def test_an_authorisation_holds_and_its_clearing_captures_the_cleared_amount(
    api: httpx.AsyncClient,
    alice: Holder,
    feed: ProcessorFeed,
    sessions: SessionFactory,
    temporal_client: Client,
) -> None:
    event = _authorization(alice)
    authorized = await _send(feed, event)
    replayed = await _send(feed, event)  # the same delivery again
    again = await _send(feed, _authorization(alice))  # the same authorisation, a new delivery
    held = await _balance(api, alice)
    pending = await _transaction(api, alice, authorized["transaction_id"])
    handle = temporal_client.get_workflow_handle(
        card_authorization_workflow_id(uuid.UUID(alice.account_id), "auth-1")
    )
    attributes = (await handle.describe()).typed_search_attributes

    clearing = _clearing(alice)
    cleared = await _send(feed, clearing)
    redelivered = await _send(feed, clearing | {"event_id": "evt-redelivery"})
    after = await _balance(api, alice)
    posted = await _transaction(api, alice, authorized["transaction_id"])

    assert authorized["outcome"] == "authorized"
    assert replayed["duplicate"] is True
    assert again["outcome"] == "authorized"
    assert again["transaction_id"] == authorized["transaction_id"]
    assert held == (10_000, 3_000)
    assert pending["status"] == "pending"
    assert pending["kind"] == "card"
    assert attributes.get(search_attributes.STATUS) == "card_authorized"
    assert cleared["outcome"] == "cleared"
    assert redelivered["outcome"] == "cleared"  # a redelivered clearing captures nothing more
    assert after == (10_000 - 2_745, 0)
    assert posted["status"] == "posted"
    assert posted["amount"]["amount_minor"] == 2_745
    await assert_ledger_ok(sessions)
    history = await handle.fetch_history()
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "card_authorization_cleared.json").write_text(history.to_json())
    await replay_history(history, CardAuthorizationWorkflow)


@pytest.mark.parametrize("path", recorded("CardAuthorizationWorkflow"), ids=lambda p: p.stem)
async def test_recorded_card_authorization_histories_still_replay(path: Path) -> None:
    await replay(path, CardAuthorizationWorkflow)


async def test_a_reversal_releases_the_hold_and_nothing_can_be_cleared_after(
    api: httpx.AsyncClient, alice: Holder, feed: ProcessorFeed, sessions: SessionFactory
) -> None:
    authorized = await feed.send(
        card_authorization(alice.number, "auth-1", "30.00", "EUR", merchant="Shell")
    )

    reversed_ = await _send(feed, _reversal(alice))
    reversed_again = await _send(feed, _reversal(alice))
    late_clearing = await _send(feed, _clearing(alice))

    assert authorized.outcome == "authorized"
    assert reversed_["outcome"] == "reversed"
    assert reversed_again["outcome"] == "reversed"
    assert late_clearing["outcome"] == "declined"
    assert late_clearing["reason"] == "authorization-reversed"
    assert await _balance(api, alice) == (10_000, 0)
    await assert_ledger_ok(sessions)


async def test_refused_authorisations_and_clearings_move_nothing(
    api: httpx.AsyncClient, alice: Holder, feed: ProcessorFeed, sessions: SessionFactory
) -> None:
    too_much = await _send(feed, _authorization(alice, "auth-big", amount="100.01"))
    usd = await _send(feed, _authorization(alice, "auth-usd", currency="USD"))
    await _send(feed, _authorization(alice, "auth-2"))
    over = (await feed.send(card_clearing(alice.number, "auth-2", "30.01"))).model_dump()
    unknown = await _send(feed, _clearing(alice, "auth-nobody"))
    nobody = await _send(feed, _authorization(alice, "auth-3", account_number="000000000000"))

    assert too_much["outcome"] == "declined"
    assert too_much["reason"] == "insufficient-funds"
    assert usd["reason"] == "currency-mismatch"
    assert over["outcome"] == "declined"
    assert over["reason"] == "invalid-amount"
    assert unknown["outcome"] == "unmatched"
    assert nobody["outcome"] == "unmatched"
    assert await _balance(api, alice) == (10_000, 3_000)  # only auth-2 holds
    await assert_ledger_ok(sessions)


# long enough that the event still lies in the future when a loaded CI machine validates it
@pytest.mark.parametrize("lapse_seconds", [5.0])
async def test_an_authorisation_nobody_clears_lapses_and_releases_the_hold(
    api: httpx.AsyncClient,
    alice: Holder,
    feed: ProcessorFeed,
    sessions: SessionFactory,
    lapse_seconds: float,
) -> None:
    expires_at = datetime.now(UTC) + timedelta(seconds=lapse_seconds)
    authorized = await _send(feed, _authorization(alice, expires_at=expires_at.isoformat()))
    held = await _balance(api, alice)

    async def released() -> bool | None:
        return True if await _balance(api, alice) == (10_000, 0) else None

    await eventually(released, max_wait=20, interval=0.2)
    late = await _send(feed, _clearing(alice))
    row = await _transaction(api, alice, authorized["transaction_id"])

    assert held == (10_000, 3_000)
    assert late["outcome"] == "declined"
    assert late["reason"] == "authorization-expired"
    assert row["status"] == "released"
    await assert_ledger_ok(sessions)
