"""Accounts API end to end: default account, open, rename, balance, close (workflow), and the
authorization boundary between two customers."""

from __future__ import annotations

import httpx
import pytest

from core.db import SessionFactory
from core.email import MemoryEmailBackend
from tests.flows import Customer, fund, register_customer


@pytest.fixture
async def alice(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer."""
    return await register_customer(api, outbox, "alice@example.com")


async def _open(api: httpx.AsyncClient, who: Customer, **body: str) -> dict[str, object]:
    response = await api.post(
        "/api/accounts",
        headers=who.auth,
        json={"currency": "EUR", "type": "savings", "name": "Savings"} | body,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_registration_opens_a_default_account(
    api: httpx.AsyncClient, alice: Customer
) -> None:
    accounts = (await api.get("/api/accounts", headers=alice.auth)).json()["items"]

    assert len(accounts) == 1
    assert accounts[0]["name"] == "Main account"
    assert accounts[0]["currency"] == "EUR"
    assert accounts[0]["balance"]["available"] == {
        "amount": "0.00",
        "amount_minor": 0,
        "currency": "EUR",
    }
    assert len(accounts[0]["number"]) == 12


async def test_open_is_idempotent_with_an_idempotency_key(
    api: httpx.AsyncClient, alice: Customer
) -> None:
    headers = alice.auth | {"Idempotency-Key": "open-jpy-1"}
    body = {"currency": "jpy", "type": "checking", "name": "Yen"}

    first = await api.post("/api/accounts", headers=headers, json=body)
    again = await api.post("/api/accounts", headers=headers, json=body)
    changed = await api.post("/api/accounts", headers=headers, json=body | {"name": "Other"})
    accounts = (await api.get("/api/accounts", headers=alice.auth)).json()["items"]

    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["currency"] == "JPY"
    assert first.json()["balance"]["posted"]["amount"] == "0"
    assert changed.status_code == 422
    assert changed.json()["type"].endswith("/idempotency-key-reused")
    assert len(accounts) == 2


async def test_rename_changes_only_the_name(api: httpx.AsyncClient, alice: Customer) -> None:
    account = await _open(api, alice)

    renamed = await api.put(
        f"/api/accounts/{account['id']}", headers=alice.auth, json={"name": "Rainy day"}
    )
    sneaky = await api.put(
        f"/api/accounts/{account['id']}",
        headers=alice.auth,
        json={"name": "x", "currency": "USD", "posted": 10**6},
    )

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Rainy day"
    assert sneaky.status_code == 422
    again = (await api.get(f"/api/accounts/{account['id']}", headers=alice.auth)).json()
    assert again["name"] == "Rainy day"
    assert again["currency"] == "EUR"


async def test_bad_account_input_is_refused(api: httpx.AsyncClient, alice: Customer) -> None:
    unknown = await api.post(
        "/api/accounts", headers=alice.auth, json={"currency": "XYZ", "name": "n"}
    )
    malformed = await api.post(
        "/api/accounts", headers=alice.auth, json={"currency": "EURO", "name": "n"}
    )
    bad_type = await api.post(
        "/api/accounts", headers=alice.auth, json={"currency": "EUR", "name": "n", "type": "gold"}
    )

    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-currency")
    assert malformed.status_code == 422
    assert bad_type.status_code == 422
    assert len((await api.get("/api/accounts", headers=alice.auth)).json()["items"]) == 1


async def test_closing_an_empty_account_through_the_workflow(
    api: httpx.AsyncClient, alice: Customer
) -> None:
    account = await _open(api, alice)

    closed = await api.delete(f"/api/accounts/{account['id']}", headers=alice.auth)
    again = await api.delete(f"/api/accounts/{account['id']}", headers=alice.auth)
    open_list = (await api.get("/api/accounts", headers=alice.auth)).json()["items"]
    all_list = (
        await api.get("/api/accounts", headers=alice.auth, params={"include_closed": True})
    ).json()["items"]

    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["workflow_id"] == f"account-closure-{account['id']}"
    assert again.status_code == 409
    assert account["id"] not in {a["id"] for a in open_list}
    assert account["id"] in {a["id"] for a in all_list}


async def test_closing_refuses_a_balance_unless_swept(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory
) -> None:
    main = (await api.get("/api/accounts", headers=alice.auth)).json()["items"][0]
    savings = await _open(api, alice)
    await fund(sessions, str(savings["id"]), 12_345, "EUR")

    refused = await api.delete(f"/api/accounts/{savings['id']}", headers=alice.auth)
    swept = await api.delete(
        f"/api/accounts/{savings['id']}",
        headers=alice.auth,
        params={"sweep_to_account_id": main["id"]},
    )
    main_balance = (await api.get(f"/api/accounts/{main['id']}/balance", headers=alice.auth)).json()

    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/account-not-empty")
    assert swept.status_code == 200, swept.text
    assert swept.json()["swept"]["amount"] == "123.45"
    assert main_balance["available"]["amount_minor"] == 12_345


async def test_another_customers_accounts_are_invisible_and_untouchable(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, alice: Customer
) -> None:
    bob = await register_customer(api, outbox, "bob@example.com")
    alice_account = (await api.get("/api/accounts", headers=alice.auth)).json()["items"][0]
    bob_account = (await api.get("/api/accounts", headers=bob.auth)).json()["items"][0]
    url = f"/api/accounts/{alice_account['id']}"

    answers = [
        await api.get(url, headers=bob.auth),
        await api.get(f"{url}/balance", headers=bob.auth),
        await api.put(url, headers=bob.auth, json={"name": "mine now"}),
        await api.delete(url, headers=bob.auth),
        await api.delete(
            f"/api/accounts/{bob_account['id']}",
            headers=bob.auth,
            params={"sweep_to_account_id": alice_account["id"]},
        ),
    ]

    assert [a.status_code for a in answers] == [404] * 5
    assert all(a.json()["type"].endswith("/not-found") for a in answers)
    listed = {a["id"] for a in (await api.get("/api/accounts", headers=bob.auth)).json()["items"]}
    assert alice_account["id"] not in listed
    assert (await api.get(url, headers=alice.auth)).json()["name"] == "Main account"
