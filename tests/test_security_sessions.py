"""Self-service sessions: the customer sees each login session's device and last use, and can
end one from another device (its refresh and access tokens stop working at once)."""

from __future__ import annotations

import uuid

import httpx

from core.db import SessionFactory
from core.email import MemoryEmailBackend
from tests.flows import password_step, register_customer
from tests.security_support import audit_rows


async def test_sessions_show_devices_and_one_can_be_revoked_from_another(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    ada = await register_customer(api, outbox)
    challenge = await password_step(api, ada)
    phone = await api.post(
        "/api/auth/login",
        json={"challenge_token": challenge, "totp_code": ada.fresh_totp()},
        headers={"User-Agent": "VortexPhone/2.1"},
    )
    assert phone.status_code == 200, phone.text
    phone_auth = {"Authorization": f"Bearer {phone.json()['access_token']}"}

    listed = await api.get("/api/auth/sessions", headers=ada.auth)
    items = listed.json()["items"]
    phone_session = next(s for s in items if s["device"] == "VortexPhone/2.1")
    revoked = await api.delete(f"/api/auth/sessions/{phone_session['id']}", headers=ada.auth)
    twice = await api.delete(f"/api/auth/sessions/{phone_session['id']}", headers=ada.auth)
    unknown = await api.delete(f"/api/auth/sessions/{uuid.uuid4()}", headers=ada.auth)
    phone_after = await api.get("/api/accounts", headers=phone_auth)
    refresh_after = await api.post(
        "/api/auth/refresh", json={"refresh_token": phone.json()["refresh_token"]}
    )
    listed_after = await api.get("/api/auth/sessions", headers=ada.auth)

    assert listed.status_code == 200
    assert len(items) == 2
    assert [s["current"] for s in items].count(True) == 1
    assert phone_session["current"] is False
    assert revoked.status_code == 204
    assert twice.status_code == 404
    assert unknown.status_code == 404
    assert phone_after.status_code == 401
    assert refresh_after.status_code == 401
    assert [s["id"] for s in listed_after.json()["items"]] != [phone_session["id"]]
    assert len(listed_after.json()["items"]) == 1
    revocations = await audit_rows(sessions, "session.revoked")
    assert [r.subject for r in revocations] == [phone_session["id"]]


async def test_a_customer_cannot_revoke_another_customers_session(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    ada = await register_customer(api, outbox, "ada@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    bobs = (await api.get("/api/auth/sessions", headers=bob.auth)).json()["items"][0]["id"]

    attempt = await api.delete(f"/api/auth/sessions/{bobs}", headers=ada.auth)
    bob_still = await api.get("/api/accounts", headers=bob.auth)

    assert attempt.status_code == 404
    assert bob_still.status_code == 200
