"""The codec server's door: staff only, the UI's origins only, problem+json refusals that decode
nothing, the login cookie the UI sends, and the audit of what was served."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from api.auth.tokens import TokenService
from api.codec.app import MAX_BODY_BYTES, create_codec_app
from api.codec.auth import SESSION_COOKIE, Staff, StaffCredentials, issue_session, ops_token
from core.crypto import crypto_for
from core.settings import Settings
from temporal.codec import ENCODING, EncryptionCodec, PayloadKeys, codec_for
from tests.conftest import TEST_SECRET

UI = "http://localhost:8233"
UI_BY_IP = "http://127.0.0.1:8233"
SECRET_TEXT = b'{"description":"salary for M. Keller","amount_minor":420000}'
Audited = list[tuple[str, str, int, str]]


@pytest.fixture
def codec_settings() -> Settings:
    """Settings of the codec server under test (default UI origins, derived ops token)."""
    return Settings(_env_file=None, environment="test", secret_key=SecretStr(TEST_SECRET))


@pytest.fixture
def audited() -> Audited:
    """What the codec server audited: (staff, action, payload count, namespace)."""
    return []


@pytest.fixture
async def codec_http(
    codec_settings: Settings, audited: Audited
) -> AsyncIterator[httpx.AsyncClient]:
    """The codec server over the ASGI transport, auditing into `audited`."""

    async def audit(staff: Staff, action: str, count: int, namespace: str) -> None:
        audited.append((staff.name, action, count, namespace))

    app = create_codec_app(
        codec_for(codec_settings),
        StaffCredentials.from_settings(codec_settings),
        codec_settings.temporal_ui_origins,
        audit=audit,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8234") as client:
        yield client


@pytest.fixture
def bearer(codec_settings: Settings) -> dict[str, str]:
    """The ops token as a bearer header."""
    return {"Authorization": f"Bearer {ops_token(codec_settings)}"}


async def _sealed_body(settings: Settings) -> dict[str, Any]:
    sealed = await codec_for(settings).encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=SECRET_TEXT)]
    )
    return dict(json_format.MessageToDict(Payloads(payloads=sealed)))


def _clear_texts(answer: httpx.Response) -> list[bytes]:
    return [json_format.ParseDict(p, Payload()).data for p in answer.json()["payloads"]]


@pytest.mark.parametrize("origin", [UI, UI_BY_IP])
async def test_staff_from_the_ui_origin_get_clear_payloads_and_cors_headers(
    codec_http: httpx.AsyncClient,
    codec_settings: Settings,
    bearer: dict[str, str],
    audited: Audited,
    origin: str,
) -> None:
    body = await _sealed_body(codec_settings)
    headers = bearer | {"Origin": origin, "X-Namespace": "default"}

    answer = await codec_http.post("/decode", json=body, headers=headers)

    assert answer.status_code == 200, answer.text
    assert _clear_texts(answer) == [SECRET_TEXT]
    assert answer.headers["access-control-allow-origin"] == origin
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert audited == [("ops", "payload.decode", 1, "default")]


async def test_the_cli_without_an_origin_decodes_with_the_bearer_token(
    codec_http: httpx.AsyncClient, codec_settings: Settings, bearer: dict[str, str]
) -> None:
    answer = await codec_http.post(
        "/decode", json=await _sealed_body(codec_settings), headers=bearer
    )

    assert answer.status_code == 200
    assert _clear_texts(answer) == [SECRET_TEXT]
    assert "access-control-allow-origin" not in answer.headers


def _customer_token(settings: Settings) -> str:
    tokens = TokenService(
        crypto_for(TEST_SECRET).jwt_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    token, _ = tokens.issue(uuid.uuid4(), "access", 900, sid=str(uuid.uuid4()))
    return token


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-ops-token", "Basic b3BzOm9wcw==", "customer-access-token"],
    ids=["none", "wrong-token", "basic", "customer-access-token"],
)
async def test_a_request_without_a_staff_credential_is_refused_and_nothing_is_decoded(
    codec_http: httpx.AsyncClient,
    codec_settings: Settings,
    audited: Audited,
    authorization: str | None,
) -> None:
    headers = {"Origin": UI}
    if authorization == "customer-access-token":
        headers["Authorization"] = f"Bearer {_customer_token(codec_settings)}"
    elif authorization:
        headers["Authorization"] = authorization

    for path in ("/decode", "/encode"):
        answer = await codec_http.post(
            path, json=await _sealed_body(codec_settings), headers=headers
        )

        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/unauthorized")
        assert "payloads" not in answer.json()
    assert audited == []


async def test_a_foreign_origin_is_refused_even_with_the_ops_token(
    codec_http: httpx.AsyncClient,
    codec_settings: Settings,
    bearer: dict[str, str],
    audited: Audited,
) -> None:
    foreign = {"Origin": "https://evil.example"}

    answer = await codec_http.post(
        "/decode", json=await _sealed_body(codec_settings), headers=bearer | foreign
    )
    preflight = await codec_http.options(
        "/decode", headers=foreign | {"Access-Control-Request-Method": "POST"}
    )

    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/forbidden-origin")
    assert "payloads" not in answer.json()
    assert "access-control-allow-origin" not in answer.headers
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    assert audited == []


async def test_the_ui_origin_passes_the_preflight_with_the_headers_it_sends(
    codec_http: httpx.AsyncClient,
) -> None:
    answer = await codec_http.options(
        "/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-namespace",
        },
    )

    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == UI
    assert answer.headers["access-control-allow-credentials"] == "true"
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-namespace"} <= {
        h.strip() for h in allowed.split(",")
    }


async def test_staff_log_in_once_and_the_ui_then_decodes_with_the_session_cookie(
    codec_http: httpx.AsyncClient, codec_settings: Settings, audited: Audited
) -> None:
    wrong = await codec_http.post("/login", data={"token": "guess"})
    login = await codec_http.post("/login", data={"token": ops_token(codec_settings)})
    cookie = login.cookies[SESSION_COOKIE]

    answer = await codec_http.post(
        "/decode",
        json=await _sealed_body(codec_settings),
        headers={"Origin": UI},
        cookies={SESSION_COOKIE: cookie},
    )

    assert wrong.status_code == 401
    assert SESSION_COOKIE not in wrong.cookies
    assert login.status_code == 303
    set_cookie = login.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=strict" in set_cookie
    assert answer.status_code == 200
    assert _clear_texts(answer) == [SECRET_TEXT]
    assert [a[1] for a in audited] == ["codec.login", "payload.decode"]


async def test_a_forged_or_expired_session_cookie_is_refused(
    codec_http: httpx.AsyncClient, codec_settings: Settings
) -> None:
    credentials = StaffCredentials.from_settings(codec_settings)
    expired = issue_session(Staff("ops", "login"), credentials, now=0)
    valid = issue_session(Staff("ops", "login"), credentials)
    body, _, signature = valid.partition(".")
    forged = f"{body}x.{signature}"
    other_key = StaffCredentials("t" * 32, b"k" * 32, 3600)
    foreign_signed = issue_session(Staff("ops", "login"), other_key)

    for cookie in (expired, forged, foreign_signed):
        answer = await codec_http.post(
            "/decode",
            json=await _sealed_body(codec_settings),
            headers={"Origin": UI},
            cookies={SESSION_COOKIE: cookie},
        )
        assert answer.status_code == 401, cookie


async def test_a_foreign_page_cannot_plant_a_session(
    codec_http: httpx.AsyncClient, codec_settings: Settings
) -> None:
    answer = await codec_http.post(
        "/login", data={"token": ops_token(codec_settings)}, headers={"Origin": UI}
    )

    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.cookies


async def test_encode_answers_payloads_the_workers_can_decrypt(
    codec_http: httpx.AsyncClient, codec_settings: Settings, bearer: dict[str, str]
) -> None:
    clear = Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=SECRET_TEXT)])

    answer = await codec_http.post(
        "/encode", json=json_format.MessageToDict(clear), headers=bearer | {"Origin": UI}
    )
    sealed = [json_format.ParseDict(p, Payload()) for p in answer.json()["payloads"]]

    assert answer.status_code == 200
    assert sealed[0].metadata["encoding"] == ENCODING
    assert SECRET_TEXT not in sealed[0].data
    assert await codec_for(codec_settings).decode(sealed) == list(clear.payloads)


async def test_a_payload_under_an_unknown_key_is_a_clear_problem(
    codec_http: httpx.AsyncClient, bearer: dict[str, str]
) -> None:
    other = EncryptionCodec(PayloadKeys.parse(TEST_SECRET, "v7", ""))
    sealed = await other.encode([Payload(metadata={"encoding": b"json/plain"}, data=SECRET_TEXT)])

    answer = await codec_http.post(
        "/decode", json=json_format.MessageToDict(Payloads(payloads=sealed)), headers=bearer
    )

    assert answer.status_code == 422
    assert answer.json()["type"].endswith("/undecryptable-payload")
    assert "key id 'v7'" in answer.json()["detail"]


async def test_malformed_and_oversized_bodies_are_refused(
    codec_http: httpx.AsyncClient, bearer: dict[str, str]
) -> None:
    malformed = await codec_http.post("/decode", content=b"{not json", headers=bearer)
    wrong_shape = await codec_http.post("/decode", json={"payloads": "nope"}, headers=bearer)
    oversized = await codec_http.post(
        "/decode", content=b" " * (MAX_BODY_BYTES + 1), headers=bearer
    )

    assert malformed.status_code == 422
    assert wrong_shape.status_code == 422
    assert oversized.status_code == 413


def test_production_refuses_to_derive_the_ops_token() -> None:
    settings = Settings(
        _env_file=None,
        environment="production",
        secret_key=SecretStr("p" * 40),
        rail_webhook_secret=SecretStr("r" * 40),
        processor_webhook_secret=SecretStr("q" * 40),
    )

    with pytest.raises(ValueError, match="VORTEX_CODEC_SERVER_TOKEN"):
        ops_token(settings)
