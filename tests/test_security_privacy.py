"""Privacy: a data export runs as a workflow and its archive holds every row that names the
customer (found from the schema, so nothing is forgotten) with credentials withheld; erasure
pseudonymizes the person, keeps the ledger and the audit log (and says so), and leaves
`vortex ledger verify` green. Both are idempotent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import text

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from tests.cli_support import run_vortex
from tests.flows import Customer, fund, register_customer
from tests.rail_support import eventually
from tests.security_support import audit_rows

IBAN = "DE89 3704 0044 0532 0130 00"


async def _customer_with_history(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> tuple[Customer, str]:
    """Ada: funded, paid Bob everything, saved a beneficiary; her account is empty."""
    ada = await register_customer(api, outbox, "ada@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    account = (await api.get("/api/accounts", headers=ada.auth)).json()["items"][0]
    bobs = (await api.get("/api/accounts", headers=bob.auth)).json()["items"][0]
    await fund(sessions, account["id"], 5_000, "EUR")
    method = await api.post(
        "/api/payments/methods", headers=ada.auth, json={"name": "Grace Hopper", "iban": IBAN}
    )
    assert method.status_code == 201, method.text
    paid = await api.post(
        "/api/payments/transfer",
        headers=ada.auth | {"Idempotency-Key": "all-of-it"},
        json={
            "from_account_id": account["id"],
            "to_account_number": bobs["number"],
            "amount": "50.00",
            "currency": "EUR",
        },
    )
    assert paid.status_code in (201, 202), paid.text

    async def settled() -> bool | None:
        state = await api.get(f"/api/payments/{paid.json()['id']}", headers=ada.auth)
        return True if state.json()["status"] == "completed" else None

    await eventually(settled, max_wait=15, interval=0.05)
    return ada, str(account["id"])


async def test_the_export_holds_every_row_about_the_customer_and_is_idempotent(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    ada, account_id = await _customer_with_history(api, outbox, sessions)

    first, second = await asyncio.gather(
        api.post("/api/privacy/exports", headers=ada.auth),
        api.post("/api/privacy/exports", headers=ada.auth),
    )
    export_id = first.json()["id"]

    async def ready() -> dict[str, Any] | None:
        state = (await api.get(f"/api/privacy/exports/{export_id}", headers=ada.auth)).json()
        return state if state["status"] == "ready" else None

    state = await eventually(ready, max_wait=15, interval=0.05)
    archive = await api.get(state["download_url"], headers=ada.auth)
    again = await api.post("/api/privacy/exports", headers=ada.auth)

    assert sorted([first.status_code, second.status_code]) == [200, 202]
    assert second.json()["id"] == export_id
    assert again.status_code == 200
    assert again.json()["id"] == export_id
    assert archive.status_code == 200
    assert "attachment" in archive.headers["content-disposition"]
    data = archive.json()
    async with sessions() as session:  # every column that can point at a customer or account
        refs = (
            await session.execute(
                text(
                    "SELECT table_name || '.' || column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name IN ('user_id', "
                    "'owner_user_id', 'customer_id', 'actor_user_id', 'reported_by', "
                    "'account_id')"
                )
            )
        ).scalars()
        expected_sources = sorted(refs)
    assert data["sources"] == expected_sources
    tables = data["tables"]
    assert tables["users"][0]["email"] == "ada@example.com"
    assert tables["users"][0]["password_hash"] == "[withheld: credential]"
    assert tables["users"][0]["mfa_secret_encrypted"] == "[withheld: credential]"
    assert [a["id"] for a in tables["ledger_accounts"]] == [account_id]
    assert {t["kind"] for t in tables["transactions"]} >= {"funding", "transfer"}
    assert len(tables["postings"]) == 2  # the funding's and the transfer's leg on her account
    assert tables["payments"][0]["status"] == "completed"
    assert tables["payment_methods"][0]["name"] == "Grace Hopper"
    assert tables["known_devices"]
    assert tables["login_sessions"]
    assert {e["action"] for e in tables["audit_log"]} >= {
        "mfa.verify",
        "payment.transfer_requested",
    }
    assert "ada@example.com" not in json.dumps(tables.get("refresh_tokens", []))
    other = await api.get(
        f"/api/privacy/exports/{export_id}",
        headers=(await register_customer(api, outbox, "eve@example.com")).auth,
    )
    assert other.status_code == 404


async def test_erasure_pseudonymizes_keeps_the_ledger_and_says_why(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    settings: Settings,
) -> None:
    ada, account_id = await _customer_with_history(api, outbox, sessions)
    code = ada.fresh_totp()

    first, second = await asyncio.gather(
        api.post("/api/privacy/erasure", headers=ada.auth, json={"totp_code": code}),
        api.post("/api/privacy/erasure", headers=ada.auth, json={"totp_code": code}),
    )
    after = await api.get("/api/accounts", headers=ada.auth)
    login = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": ada.password}
    )
    code_out, said = await run_vortex(settings, "ledger", "verify")

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json()
    assert any("ledger" in k["what"] for k in first.json()["kept"])
    assert any("audit" in k["what"] for k in first.json()["kept"])
    assert len(await audit_rows(sessions, "privacy.erased")) == 1
    assert after.status_code == 401  # the login ended with the erasure
    assert login.status_code == 401
    async with sessions() as session:
        user = (
            await session.execute(
                text(
                    "SELECT email, first_name, password_hash, mfa_secret_encrypted FROM users "
                    "WHERE email NOT LIKE 'bob%'"
                )
            )
        ).one()
        ledger_rows = await session.scalar(
            text("SELECT count(*) FROM transactions WHERE account_id = :a"), {"a": account_id}
        )
        method = (await session.execute(text("SELECT name, iban FROM payment_methods"))).one()
        devices = await session.scalar(
            text(
                "SELECT count(*) FROM known_devices k JOIN users u "
                "ON u.id = k.user_id WHERE u.first_name = 'Erased'"
            )
        )
    assert user.email.endswith("@erased.invalid")
    assert user.first_name == "Erased"
    assert (user.password_hash, user.mfa_secret_encrypted) == ("erased", None)
    assert ledger_rows == 2
    assert (method.name, method.iban) == ("erased", "ERASED")
    assert devices == 0
    assert (await verify_ledger(sessions)).ok
    assert code_out == 0, said


async def test_erasure_is_refused_while_money_is_held_for_the_customer(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    ada = await register_customer(api, outbox, "ada@example.com")
    account = (await api.get("/api/accounts", headers=ada.auth)).json()["items"][0]
    await fund(sessions, account["id"], 100, "EUR")

    refused = await api.post(
        "/api/privacy/erasure", headers=ada.auth, json={"totp_code": ada.fresh_totp()}
    )

    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/erasure-blocked")
    assert (await api.get("/api/auth/profile", headers=ada.auth)).json()["email"] == (
        "ada@example.com"
    )
    assert [
        e.details["funded_accounts"] for e in await audit_rows(sessions, "privacy.erasure_refused")
    ] == [1]
