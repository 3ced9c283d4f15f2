"""Tampered, forged, expired and misused tokens are refused with problem+json 401."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings

import httpx
import jwt
import pytest

from core.crypto import crypto_for
from core.email import MemoryEmailBackend
from tests.conftest import TEST_SECRET
from tests.flows import register_customer


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def _profile_with(api: httpx.AsyncClient, token: str) -> httpx.Response:
    return await api.get("/api/auth/profile", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def access_token(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> str:
    """A genuine access token of a registered customer."""
    return (await register_customer(api, outbox)).access_token


async def test_alg_none_token_is_refused(api: httpx.AsyncClient, access_token: str) -> None:
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(access_token))}."

    response = await _profile_with(api, forged)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_token_signed_with_another_key_is_refused(
    api: httpx.AsyncClient, access_token: str
) -> None:
    forged = jwt.encode(_claims(access_token), "attacker-key-" * 4, algorithm="HS256")

    assert (await _profile_with(api, forged)).status_code == 401


async def test_token_with_tampered_payload_is_refused(
    api: httpx.AsyncClient, access_token: str
) -> None:
    header, _, signature = access_token.split(".")
    claims = _claims(access_token) | {"sub": str(uuid.uuid4())}

    assert (await _profile_with(api, f"{header}.{_b64(claims)}.{signature}")).status_code == 401


async def test_refresh_token_cannot_be_used_as_access_token(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)

    response = await _profile_with(api, customer.refresh_token)

    assert response.status_code == 401
    assert "access" in response.json()["detail"]


async def test_expired_and_wrong_audience_tokens_are_refused(
    api: httpx.AsyncClient, access_token: str
) -> None:
    key = crypto_for(TEST_SECRET).jwt_key
    now = int(time.time())
    expired = jwt.encode(_claims(access_token) | {"exp": now - 10}, key, algorithm="HS256")
    foreign = jwt.encode(_claims(access_token) | {"aud": "other-api"}, key, algorithm="HS256")
    with warnings.catch_warnings():  # HS512 with our 32-byte key: the point is the algorithm
        warnings.simplefilter("ignore")
        other_alg = jwt.encode(_claims(access_token), key, algorithm="HS512")

    assert (await _profile_with(api, expired)).status_code == 401
    assert (await _profile_with(api, foreign)).status_code == 401
    assert (await _profile_with(api, other_alg)).status_code == 401
    assert (await _profile_with(api, access_token)).status_code == 200


async def test_missing_or_garbage_authorization_is_refused(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/auth/profile")).status_code == 401
    assert (await _profile_with(api, "not.a.jwt")).status_code == 401
