"""Bad input gets a clear problem+json answer and changes nothing."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select

from core.db import SessionFactory
from models.identity.tables import User

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
