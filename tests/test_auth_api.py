"""Login with MFA, recovery codes, refresh rotation and reuse detection, logout, lockout."""

from __future__ import annotations

import httpx
import pyotp

from core.email import MemoryEmailBackend
from tests.flows import answer_challenge, password_step, register_customer, start_registration


async def test_login_asks_for_mfa_then_accepts_a_totp_code_with_the_challenge(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    challenge = await password_step(api, customer)

    response = await answer_challenge(api, challenge, customer.fresh_totp())

    assert response.status_code == 200, response.text
    tokens = response.json()
    profile = await api.get(
        "/api/auth/profile", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert profile.status_code == 200


async def test_a_totp_code_is_never_accepted_twice(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    code = customer.fresh_totp()
    body = {"email": customer.email, "password": customer.password, "totp_code": code}

    first = await api.post("/api/auth/login", json=body)
    replay = await api.post("/api/auth/login", json=body)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["type"].endswith("/invalid-mfa-code")


async def test_a_recovery_code_logs_in_once(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    body = {
        "email": customer.email,
        "password": customer.password,
        "recovery_code": customer.recovery_codes[0].upper(),
    }

    first = await api.post("/api/auth/login", json=body)
    second = await api.post("/api/auth/login", json=body)

    assert first.status_code == 200
    assert second.status_code == 401


async def test_wrong_password_is_generic_and_repeated_failures_lock_the_account(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    wrong = {"email": customer.email, "password": "not-the-password-at-all"}
    unknown = await api.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "whatever-123456"}
    )
    failures = [await api.post("/api/auth/login", json=wrong) for _ in range(5)]

    locked = await api.post(
        "/api/auth/login", json={"email": customer.email, "password": customer.password}
    )

    assert unknown.json()["type"] == failures[0].json()["type"]
    assert [f.status_code for f in failures] == [401] * 5
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0


async def test_failed_totp_attempts_count_towards_the_lockout(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    valid = pyotp.TOTP(customer.totp_secret).now()
    bad = f"{(int(valid) + 1) % 1_000_000:06d}"
    body = {"email": customer.email, "password": customer.password, "totp_code": bad}

    answers = [await api.post("/api/auth/login", json=body) for _ in range(6)]

    assert [a.status_code for a in answers] == [401] * 5 + [429]


async def test_refresh_rotates_and_reusing_an_old_token_revokes_the_family(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    rotated = await api.post("/api/auth/refresh", json={"refresh_token": customer.refresh_token})
    assert rotated.status_code == 200
    new_pair = rotated.json()
    assert new_pair["refresh_token"] != customer.refresh_token

    reuse = await api.post("/api/auth/refresh", json={"refresh_token": customer.refresh_token})
    after_reuse = await api.post(
        "/api/auth/refresh", json={"refresh_token": new_pair["refresh_token"]}
    )
    access_after = await api.get(
        "/api/auth/profile", headers={"Authorization": f"Bearer {new_pair['access_token']}"}
    )

    assert reuse.status_code == 401
    assert "reuse" in reuse.json()["detail"]
    assert after_reuse.status_code == 401
    assert access_after.status_code == 401


async def test_logout_ends_access_and_refresh_tokens(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)

    logout = await api.post("/api/auth/logout", headers=customer.auth)
    profile = await api.get("/api/auth/profile", headers=customer.auth)
    refresh = await api.post("/api/auth/refresh", json={"refresh_token": customer.refresh_token})

    assert logout.status_code == 204
    assert profile.status_code == 401
    assert refresh.status_code == 401


async def test_profile_update_changes_names_only(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)

    renamed = await api.patch(
        "/api/auth/profile", headers=customer.auth, json={"first_name": "  Augusta "}
    )
    sneaky = await api.patch(
        "/api/auth/profile", headers=customer.auth, json={"email": "evil@example.com"}
    )
    profile = (await api.get("/api/auth/profile", headers=customer.auth)).json()

    assert renamed.status_code == 200
    assert profile["first_name"] == "Augusta"
    assert sneaky.status_code == 422
    assert profile["email"] == customer.email


async def test_a_user_with_unfinished_registration_is_told_what_is_missing(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    await start_registration(api, "pending@example.com")

    response = await api.post(
        "/api/auth/login",
        json={"email": "pending@example.com", "password": "correct-horse-battery-staple-42"},
    )

    assert response.status_code == 403
    assert response.json()["type"].endswith("/registration-incomplete")
