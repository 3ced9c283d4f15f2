"""The threats route reflects attacks run here: a password-guessing lockout, refresh-token
reuse, a forged webhook, a burst of 404s on other ids, and a login from a new device."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from api.services import Services
from core.email import MemoryEmailBackend
from core.signatures import SIGNATURE_HEADER
from models.staff.tables import StaffRole
from tests.flows import password_step, register_customer
from tests.security_support import new_member


async def _signals(api: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, dict[str, Any]]:
    answer = await api.get("/api/security/threats?window_minutes=30", headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["window_minutes"] == 30
    return {s["name"]: s for s in answer.json()["signals"]}


async def test_threats_count_the_attacks_run_against_the_api(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, services: Services
) -> None:
    watcher = await new_member(services, "comp@bank.example", StaffRole.COMPLIANCE)
    ada = await register_customer(api, outbox, "ada@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    before = await _signals(api, watcher.auth)

    for _ in range(services.settings.login_max_failures):  # guessing ada's password
        await api.post("/api/auth/login", json={"email": ada.email, "password": "guess-123456"})
    first = await api.post("/api/auth/refresh", json={"refresh_token": ada.refresh_token})
    reused = await api.post("/api/auth/refresh", json={"refresh_token": ada.refresh_token})
    forged = await api.post(
        "/api/webhooks/rail",
        content=b'{"type": "payment.settled"}',
        headers={SIGNATURE_HEADER: "t=1,v1=" + "0" * 64, "content-type": "application/json"},
    )
    for _ in range(25):  # bob walks other people's payment ids
        await api.get(f"/api/payments/{uuid.uuid4()}", headers=bob.auth)
    challenge = await password_step(api, bob)
    new_device = await api.post(
        "/api/auth/login",
        json={"challenge_token": challenge, "totp_code": bob.fresh_totp()},
        headers={"User-Agent": "Unknown-Tablet/9"},
    )
    bob_id = (await api.get("/api/auth/profile", headers=bob.auth)).json()["id"]
    after = await _signals(api, watcher.auth)
    customer_view = await api.get("/api/security/threats", headers=bob.auth)

    assert {name: s["count"] for name, s in before.items()} == {
        "brute_force": 0,
        "refresh_token_reuse": 0,
        "forged_webhooks": 0,
        "replayed_webhooks": 0,
        "new_device_logins": 0,
        "enumeration": 0,
    }
    assert first.status_code == 200
    assert reused.status_code == 401
    assert forged.status_code == 401
    assert new_device.status_code == 200, new_device.text
    assert after["brute_force"]["count"] == services.settings.login_max_failures
    assert after["brute_force"]["details"]["locked_accounts_now"] == 1
    assert after["refresh_token_reuse"]["count"] == 1
    assert after["forged_webhooks"]["count"] == 1
    assert after["forged_webhooks"]["details"] == {"webhook.rejected": 1}
    assert after["new_device_logins"]["count"] == 1
    assert after["enumeration"]["count"] >= 25
    assert after["enumeration"]["details"]["suspect_user_ids"] == [bob_id]
    assert customer_view.status_code == 404
