"""Login hardening: single-use MFA challenge tokens, X-Forwarded-For believed only from trusted
proxies, a client lockout that does not stop correct logins with a second factor, and problem
details in our own words. The API's peer (127.0.0.1) is a trusted proxy in this module, and a
client address locks after three failures."""

from __future__ import annotations

import ipaddress
import uuid

import httpx
import pytest

from api.forwarded import forwarded_client
from core.email import MemoryEmailBackend
from core.settings import Settings
from tests.flows import answer_challenge, password_step, register_customer
from tests.payment_support import wrong_totp

CLIENT_MAX_FAILURES = 3


@pytest.fixture
def trusted_proxies() -> list[str]:
    """The proxies the API believes (parametrize to change)."""
    return ["127.0.0.1/32"]


@pytest.fixture
def settings(base_settings: Settings, trusted_proxies: list[str]) -> Settings:
    """Per-test queues, the trusted proxies and a small per-client failure limit."""
    suffix = uuid.uuid4().hex[:8]
    return base_settings.model_copy(
        update={
            "task_queue": f"main-{suffix}",
            "external_task_queue": f"external-{suffix}",
            "trusted_proxies": [ipaddress.ip_network(p) for p in trusted_proxies],
            "client_max_failures": CLIENT_MAX_FAILURES,
        }
    )


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def _lock_out(api: httpx.AsyncClient, address: str) -> None:
    """Failed logins for accounts nobody has, from one address, until it is locked."""
    for i in range(CLIENT_MAX_FAILURES):
        answer = await api.post(
            "/api/auth/login",
            headers=_from(address),
            json={"email": f"guess-{i}@example.com", "password": "not-the-password-123"},
        )
        assert answer.status_code == 401, answer.text


async def test_a_challenge_token_opens_one_session_only(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    challenge = await password_step(api, customer)

    first = await answer_challenge(api, challenge, customer.fresh_totp())
    second = await answer_challenge(api, challenge, customer.fresh_totp())
    renewed = await api.post("/api/auth/login", json={"challenge_token": challenge})

    assert first.status_code == 200, first.text
    assert second.status_code == 401
    assert second.json()["type"].endswith("/invalid-token")
    assert "already been used" in second.json()["detail"]
    assert renewed.status_code == 401
    assert renewed.json()["type"].endswith("/invalid-token")


async def test_a_wrong_code_does_not_use_up_the_challenge_token(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    challenge = await password_step(api, customer)

    typo = await answer_challenge(api, challenge, wrong_totp(customer.totp_secret))
    again = await api.post("/api/auth/login", json={"challenge_token": challenge})
    fixed = await answer_challenge(api, challenge, customer.fresh_totp())

    assert typo.json()["type"].endswith("/invalid-mfa-code")
    assert again.json()["challenge_token"] == challenge  # the same token, never a new one
    assert fixed.status_code == 200, fixed.text


def test_forwarded_for_is_read_right_to_left_and_only_from_trusted_proxies() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]

    assert forwarded_client("203.0.113.9", ["198.51.100.1"], proxies) == "203.0.113.9"
    assert forwarded_client("10.0.0.2", ["198.51.100.1"], proxies) == "198.51.100.1"
    assert forwarded_client("10.0.0.2", ["1.2.3.4, 198.51.100.1, 10.0.0.3"], proxies) == (
        "198.51.100.1"
    )
    assert forwarded_client("10.0.0.2", ["1.2.3.4", "198.51.100.1:4711"], proxies) == (
        "198.51.100.1"
    )
    assert forwarded_client("::1", ["[2001:db8::7]:443"], proxies) == "2001:db8::7"
    assert forwarded_client("10.0.0.2", ["garbage, 10.0.0.5"], proxies) == "10.0.0.5"
    assert forwarded_client("10.0.0.2", [], proxies) == "10.0.0.2"
    assert forwarded_client("10.0.0.2", ["198.51.100.1"], []) == "10.0.0.2"


async def test_a_lockout_behind_a_trusted_proxy_is_per_forwarded_client(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    body = {"email": customer.email, "password": customer.password}
    await _lock_out(api, "203.0.113.7")

    attacker = await api.post("/api/auth/login", headers=_from("203.0.113.7"), json=body)
    spoofed = await api.post(
        "/api/auth/login", headers=_from("198.51.100.9, 203.0.113.7"), json=body
    )
    neighbour = await api.post("/api/auth/login", headers=_from("198.51.100.9"), json=body)

    assert attacker.status_code == 429
    assert spoofed.status_code == 429  # a made-up hop before the proxy's changes nothing
    assert neighbour.json()["type"].endswith("/mfa-required")


@pytest.mark.parametrize("trusted_proxies", [[]])
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    await _lock_out(api, "203.0.113.7")  # the header is ignored: the peer itself is locked

    other = await api.post(
        "/api/auth/login",
        headers=_from("198.51.100.9"),
        json={"email": customer.email, "password": customer.password},
    )

    assert other.status_code == 429


async def test_a_correct_login_with_totp_succeeds_while_the_client_address_is_locked_out(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    office = _from("192.0.2.10")
    await _lock_out(api, "192.0.2.10")
    password = {"email": customer.email, "password": customer.password}
    wrong = password | {"password": "not-the-password-123"}
    bad_code = wrong_totp(customer.totp_secret)

    password_only = await api.post("/api/auth/login", headers=office, json=password)
    wrong_code = await api.post(
        "/api/auth/login", headers=office, json=password | {"totp_code": bad_code}
    )
    wrong_password = await api.post(
        "/api/auth/login", headers=office, json=wrong | {"totp_code": customer.fresh_totp()}
    )
    correct = await api.post(
        "/api/auth/login", headers=office, json=password | {"totp_code": customer.fresh_totp()}
    )

    assert password_only.status_code == 429
    assert wrong_code.status_code == 429  # the same answer as a wrong password: no oracle
    assert wrong_password.status_code == 429
    assert correct.status_code == 200, correct.text
    assert int(password_only.headers["Retry-After"]) > 0


async def test_the_account_limit_still_applies_to_logins_with_a_second_factor(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    password = {"email": customer.email, "password": customer.password}
    for i in range(5):  # VORTEX_LOGIN_MAX_FAILURES, each from its own address
        await api.post(
            "/api/auth/login",
            headers=_from(f"198.51.100.{i + 1}"),
            json=password | {"password": "not-the-password-123"},
        )

    correct = await api.post(
        "/api/auth/login",
        headers=_from("192.0.2.99"),
        json=password | {"totp_code": customer.fresh_totp()},
    )

    assert correct.status_code == 429


async def test_token_problems_are_in_our_words(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    forged = customer.access_token[:-4] + (
        "AAAA" if customer.access_token[-4:] != "AAAA" else "BBBB"
    )

    answers = [
        await api.get("/api/auth/profile", headers={"Authorization": f"Bearer {token}"})
        for token in (forged, customer.refresh_token, "not.a.jwt")
    ]

    details = [a.json()["detail"] for a in answers]
    assert details == [
        "this is not a valid access token",
        "this is not an access token",
        "this is not a valid access token",
    ]
    assert all(a.status_code == 401 for a in answers)
