"""Bad input gets a clear problem+json answer and changes nothing."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select

from core.db import SessionFactory
from core.email import MemoryEmailBackend
from models.identity.tables import User
from tests.flows import register_customer

PROBLEM = "application/problem+json"


async def _user_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def _register_body(**overrides: str) -> dict[str, str]:
    body = {
        "email": "new@example.com",
        "password": "correct-horse-battery-staple-42",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    return body | overrides


async def test_weak_password_is_refused_with_reasons(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    short = await api.post("/api/auth/register", json=_register_body(password="abc"))
    common = await api.post("/api/auth/register", json=_register_body(password="password1234"))

    assert short.status_code == 422
    assert short.headers["content-type"] == PROBLEM
    assert "at least 12" in short.json()["detail"]
    assert common.status_code == 422
    assert common.json()["reasons"]
    assert await _user_count(sessions) == 0


async def test_invalid_email_is_refused(api: httpx.AsyncClient, sessions: SessionFactory) -> None:
    response = await api.post("/api/auth/register", json=_register_body(email="not-an-email"))

    assert response.status_code == 422
    assert response.json()["type"].endswith("/validation-error")
    assert response.json()["errors"][0]["loc"] == ["body", "email"]
    assert await _user_count(sessions) == 0


async def test_malformed_json_and_unknown_fields_are_refused(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    malformed = await api.post(
        "/api/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    extra = await api.post("/api/auth/register", json=_register_body() | {"is_admin": "true"})

    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == PROBLEM
    assert extra.status_code == 422
    assert await _user_count(sessions) == 0


async def test_oversized_body_is_refused_before_parsing(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    huge = _register_body(first_name="A" * 100_000)

    response = await api.post("/api/auth/register", json=huge)

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert await _user_count(sessions) == 0


async def test_unknown_and_malformed_registration_ids(api: httpx.AsyncClient) -> None:
    unknown = await api.get(f"/api/auth/registrations/{uuid.uuid4()}")
    malformed = await api.get("/api/auth/registrations/not-a-uuid")
    verify_unknown = await api.post(
        f"/api/auth/registrations/{uuid.uuid4()}/verify-email", json={"code": "123456"}
    )

    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert malformed.status_code == 422
    assert verify_unknown.status_code == 404


async def test_malformed_verification_code_is_refused_without_costing_an_attempt(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        f"/api/auth/registrations/{uuid.uuid4()}/verify-email", json={"code": "12ab"}
    )

    assert response.status_code == 422


async def test_unknown_route_is_a_problem(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_instants_without_a_utc_form_are_a_422_and_store_nothing(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    customer = await register_customer(api, outbox, "instants@example.com")
    main = (await api.get("/api/accounts", headers=customer.auth)).json()["items"][0]["id"]
    # Year 1 at +14:00 is before 0001-01-01 UTC; the day after 9999-12-31 does not exist.
    edges = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
    entry = {"account_id": main, "amount": "1.00", "currency": "EUR"}

    answers = [
        await api.post(
            "/api/transactions",
            headers=customer.auth | {"Idempotency-Key": str(uuid.uuid4())},
            json=entry | {"occurred_at": edge},
        )
        for edge in edges
    ]
    for path in ("/api/transactions", "/api/transactions/analytics"):
        for params in [{"from": edge} for edge in edges] + [{"to": "9999-12-31"}]:
            answers.append(await api.get(path, headers=customer.auth, params=params))
    fine = await api.get("/api/transactions", headers=customer.auth, params={"to": "9998-12-31"})

    assert [a.status_code for a in answers] == [422] * len(answers), [a.text for a in answers]
    assert all(a.headers["content-type"] == PROBLEM for a in answers)
    assert "out of range" in answers[0].json()["errors"][0]["msg"]
    assert "out of range" in answers[2].json()["detail"]
    assert fine.status_code == 200
    assert fine.json()["items"] == []
