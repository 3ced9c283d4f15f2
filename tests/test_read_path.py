"""The fast read path keeps every check: the token is verified, a logout or a disabled user
takes effect on the very next request, and concurrent customers never see each other's data.
Verified access tokens are cached per process (`api.auth.tokens`): the route tests below run
with each token already cached by their first requests, and the unit tests pin the cache's
own rules (exact text only, expiry and type checked on every hit, bounded)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from api.auth import tokens as token_module
from api.auth.errors import InvalidToken
from api.auth.tokens import TokenService
from api.auth.user_status import set_user_status
from api.services import Services
from cli.users import change_status
from core.email import MemoryEmailBackend
from models.audit import AuditEvent
from models.identity.tables import UserStatus
from tests.flows import Customer, register_customer

READ_ROUTES = ("/api/accounts", "/api/transactions", "/api/payments", "/api/auth/profile")


async def _statuses(api: httpx.AsyncClient, customer: Customer) -> list[int]:
    return [(await api.get(route, headers=customer.auth)).status_code for route in READ_ROUTES]


async def _user_id(api: httpx.AsyncClient, customer: Customer) -> uuid.UUID:
    return uuid.UUID((await api.get("/api/auth/profile", headers=customer.auth)).json()["id"])


async def _login(api: httpx.AsyncClient, customer: Customer) -> httpx.Response:
    return await api.post(
        "/api/auth/login",
        json={
            "email": customer.email,
            "password": customer.password,
            "totp_code": customer.fresh_totp(),
        },
    )


async def test_logout_refuses_the_token_on_every_read_route_in_the_next_request(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox)
    before = await _statuses(api, customer)

    logout = await api.post("/api/auth/logout", headers=customer.auth)
    after = [await api.get(route, headers=customer.auth) for route in READ_ROUTES]

    assert before == [200, 200, 200, 200]
    assert logout.status_code == 204
    assert [a.status_code for a in after] == [401, 401, 401, 401]
    assert {a.json()["detail"] for a in after} == {"session has been revoked"}


async def test_a_disabled_user_is_refused_at_once_and_old_sessions_stay_dead_after_enable(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, services: Services
) -> None:
    customer = await register_customer(api, outbox)
    user_id = await _user_id(api, customer)
    before = await _statuses(api, customer)

    await set_user_status(
        services.sessions,
        services.redis,
        services.settings,
        user_id,
        UserStatus.DISABLED,
        reason="fraud report 4711",
        actor="test",
    )
    disabled = [await api.get(route, headers=customer.auth) for route in READ_ROUTES]
    refresh = await api.post("/api/auth/refresh", json={"refresh_token": customer.refresh_token})
    login_while_disabled = await _login(api, customer)
    await set_user_status(
        services.sessions,
        services.redis,
        services.settings,
        user_id,
        UserStatus.ACTIVE,
        reason="cleared",
        actor="test",
    )
    old_token_after_enable = await _statuses(api, customer)
    login_after_enable = await _login(api, customer)
    async with services.sessions() as session:
        audited = (
            await session.execute(
                select(col(AuditEvent.action), col(AuditEvent.details))
                .where(col(AuditEvent.subject) == str(user_id))
                .where(col(AuditEvent.action).like("user.%"))
                .order_by(col(AuditEvent.id))
            )
        ).all()

    assert before == [200, 200, 200, 200]
    assert [d.status_code for d in disabled] == [401, 401, 401, 401]
    assert {d.json()["detail"] for d in disabled} == {"account is not active"}
    assert refresh.status_code == 401
    assert login_while_disabled.status_code == 401
    assert old_token_after_enable == [401, 401, 401, 401]
    assert login_after_enable.status_code == 200
    customer.access_token = login_after_enable.json()["access_token"]
    assert await _statuses(api, customer) == [200, 200, 200, 200]
    assert [(a, d["reason"]) for a, d in audited] == [
        ("user.disabled", "fraud report 4711"),
        ("user.enabled", "cleared"),
    ]


async def test_the_ops_command_disables_a_user_by_email_and_names_an_unknown_one(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, services: Services
) -> None:
    customer = await register_customer(api, outbox)

    outcome = await change_status(
        services.settings, customer.email.upper(), UserStatus.DISABLED, "support ticket 12"
    )
    unknown = await change_status(
        services.settings, "nobody@example.com", UserStatus.DISABLED, "typo"
    )

    assert outcome.endswith("is disabled")
    assert unknown == "no user with email nobody@example.com"
    assert await _statuses(api, customer) == [401, 401, 401, 401]


async def test_concurrent_customers_only_ever_see_their_own_data(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    ada = await register_customer(api, outbox, "ada@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    owned: dict[str, set[str]] = {}
    for customer in (ada, bob):  # registration opened a default account for each
        listed = await api.get("/api/accounts", headers=customer.auth)
        owned[customer.email] = {a["id"] for a in listed.json()["items"]}
    assert owned[ada.email]
    assert owned[bob.email]
    assert not owned[ada.email] & owned[bob.email]

    async def read(customer: Customer, route: str) -> tuple[Customer, str, httpx.Response]:
        return customer, route, await api.get(route, headers=customer.auth)

    answers = await asyncio.gather(
        *(read(c, route) for _ in range(5) for route in READ_ROUTES for c in (ada, bob))
    )

    assert len(answers) == 40
    for customer, route, answer in answers:
        assert answer.status_code == 200, (route, answer.text)
        body = answer.json()
        if route == "/api/accounts":
            assert {a["id"] for a in body["items"]} == owned[customer.email]
        elif route == "/api/auth/profile":
            assert body["email"] == customer.email
        else:
            assert body["items"] == []  # neither has transactions or payments


def _tokens() -> TokenService:
    return TokenService(b"k" * 32, issuer="vortex-test", audience="vortex-test-api")


def test_a_cached_access_token_is_refused_the_moment_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = _tokens()
    token, _ = tokens.issue(uuid.uuid4(), "access", 60)
    claims = tokens.verify(token, "access")  # verified once: kept
    monkeypatch.setattr("api.auth.tokens.time.time", lambda: float(claims.expires_at))

    with pytest.raises(InvalidToken, match="has expired"):
        tokens.verify(token, "access")


def test_the_token_cache_answers_only_for_the_exact_token_text() -> None:
    tokens = _tokens()
    ada, bob = uuid.uuid4(), uuid.uuid4()
    ada_token, _ = tokens.issue(ada, "access", 60, sid="s-ada")
    bob_token, _ = tokens.issue(bob, "access", 60, sid="s-bob")
    for token in (ada_token, bob_token):
        tokens.verify(token, "access")
    header, payload, signature = ada_token.split(".")
    forged = (
        f"{header}.{payload}.{signature[:10]}{'A' if signature[10] != 'A' else 'B'}{signature[11:]}"
    )
    # Bob's claims under Ada's signature: a different text, so checked in full and refused.
    spliced = f"{header}.{bob_token.split('.')[1]}.{signature}"

    assert tokens.verify(ada_token, "access").subject == ada
    assert tokens.verify(bob_token, "access").subject == bob
    assert tokens.verify(bob_token, "access").extra["sid"] == "s-bob"
    for bad in (forged, spliced):
        with pytest.raises(InvalidToken, match="not a valid access token"):
            tokens.verify(bad, "access")


def test_a_cached_access_token_is_still_refused_where_another_type_is_expected() -> None:
    tokens = _tokens()
    token, _ = tokens.issue(uuid.uuid4(), "access", 60)
    tokens.verify(token, "access")

    with pytest.raises(InvalidToken, match="not a refresh token"):
        tokens.verify(token, "refresh")
    with pytest.raises(TypeError):  # the cached claims cannot be edited by a caller
        tokens.verify(token, "access").extra["roles"] = ["admin"]  # type: ignore[index]


def test_the_token_cache_is_bounded_and_an_evicted_token_is_verified_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(token_module, "VERIFIED_CACHE_SIZE", 3)
    tokens = _tokens()
    users = [uuid.uuid4() for _ in range(5)]
    issued = [tokens.issue(user, "access", 60)[0] for user in users]
    for token in issued:
        tokens.verify(token, "access")

    assert len(tokens._verified) == 3
    assert [tokens.verify(t, "access").subject for t in issued] == users
