"""Registration end to end: API -> Temporal workflow -> PostgreSQL, code read from the outbox."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from core.db import SessionFactory
from core.email import MemoryEmailBackend
from models.identity.tables import RecoveryCode, User, UserStatus
from tests.flows import code_in, register_customer, start_registration, verify_email, wait_for_email


async def test_registration_activates_user_with_mfa_and_recovery_codes(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    customer = await register_customer(api, outbox)

    status = await api.get(f"/api/auth/registrations/{customer.registration_id}")
    assert status.json()["status"] == "completed"
    assert len(customer.recovery_codes) == 10
    async with sessions() as session:
        user = (await session.execute(select(User))).scalar_one()
        stored_codes = await session.scalar(select(func.count()).select_from(RecoveryCode))
    assert user.status == UserStatus.ACTIVE
    assert user.mfa_enabled
    assert user.mfa_secret_encrypted is not None
    assert customer.totp_secret not in user.mfa_secret_encrypted
    assert stored_codes == 10
    profile = await api.get("/api/auth/profile", headers=customer.auth)
    assert profile.status_code == 200
    assert profile.json()["email"] == "ada@example.com"


async def test_status_is_served_by_the_workflow_query_while_running(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    registration_id = await start_registration(api, "grace@example.com")
    await wait_for_email(outbox, "grace@example.com")

    body = (await api.get(f"/api/auth/registrations/{registration_id}")).json()

    assert body["status"] == "awaiting_email_verification"
    assert body["attempts_left"] == 5
    assert body["expires_at"] is not None


async def test_wrong_codes_count_down_then_fail_the_registration(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    registration_id = await start_registration(api, "eve@example.com")
    real = code_in(await wait_for_email(outbox, "eve@example.com"))
    wrong = f"{(int(real) + 1) % 1_000_000:06d}"

    answers = [await verify_email(api, registration_id, wrong) for _ in range(5)]

    assert [a.status_code for a in answers] == [400, 400, 400, 400, 410]
    assert [a.json().get("attempts_left") for a in answers] == [4, 3, 2, 1, 0]
    assert answers[0].headers["content-type"] == "application/problem+json"
    late = await verify_email(api, registration_id, real)
    assert late.status_code == 409
    status = await api.get(f"/api/auth/registrations/{registration_id}")
    assert status.json()["status"] == "failed"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_registering_a_taken_email_answers_the_same_and_creates_nothing(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    await register_customer(api, outbox, "taken@example.com")
    outbox.outbox.clear()

    again = await api.post(
        "/api/auth/register",
        json={
            "email": "TAKEN@example.com",
            "password": "another-long-passphrase-77",
            "first_name": "Mallory",
            "last_name": "X",
        },
    )

    assert again.status_code == 202
    assert set(again.json()) == {"registration_id", "status", "status_url"}
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1
    assert list(outbox.outbox) == []


async def test_resend_is_refused_during_cooldown(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    registration_id = await start_registration(api, "bob@example.com")
    await wait_for_email(outbox, "bob@example.com")

    response = await api.post(f"/api/auth/registrations/{registration_id}/resend-code")

    assert response.status_code == 429
    assert "resend_available_at" in response.json()


async def test_a_taken_email_gets_a_status_url_that_behaves_like_a_real_one(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    await register_customer(api, outbox, "known@example.com")
    decoy_id = await start_registration(api, "known@example.com")
    real_id = await start_registration(api, "unknown@example.com")
    await wait_for_email(outbox, "unknown@example.com")

    decoy = (await api.get(f"/api/auth/registrations/{decoy_id}")).json()
    real = (await api.get(f"/api/auth/registrations/{real_id}")).json()
    decoy_wrong = await verify_email(api, decoy_id, "000000")
    real_wrong = await verify_email(api, real_id, "000000")
    decoy_resend = await api.post(f"/api/auth/registrations/{decoy_id}/resend-code")

    assert set(decoy) == set(real)
    assert decoy["status"] == real["status"] == "awaiting_email_verification"
    assert decoy["attempts_left"] == real["attempts_left"]
    assert decoy_wrong.status_code == real_wrong.status_code == 400
    assert decoy_wrong.json()["attempts_left"] == real_wrong.json()["attempts_left"] == 4
    assert decoy_resend.status_code == 429
