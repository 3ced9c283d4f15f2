# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""No route lets a customer create money, or move money out of the bank except through the rail.

A sweep generated from the OpenAPI calls every operation the app serves with a customer's
(the attacker's) token and valid, aggressive bodies built from a small JSON-schema generator:
the attacker's own account ids and numbers, another customer's (the victim's), amounts like
5000.00, 0.01 and -5000.00, every enum value (a credit memo as well as a debit one), fresh
Idempotency-Keys, the attacker's real TOTP codes, and forged deliveries to the signed feeds.
After every call, and again once the workflows have finished, the books must show that

- the attacker's posted total per currency never exceeds what ops funded (no entry gives the
  attacker money);
- the victim's posted total never goes down, and grows only by transfers the attacker asked for
  (entries whose debit leg is an attacker account);
- every posting on an external settlement account (money leaving or entering the bank) belongs to
  a payment the rail knows: the capture of an external payment the rail settled, or a link's
  micro-deposit the rail carried; nothing reaches suspense;
- no memo points at a journal entry or hold, and the ledger's invariant check passes;
- no answer is a 5xx, and the signed feeds refuse every unsigned or forged delivery with 401.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.auth.sessions import SessionService
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from tests.flows import fund, register_customer
from tests.ledger_support import assert_ledger_ok, new_user, open_account
from tests.payment_support import (  # noqa: F401 - fixtures
    FINAL,
    GOOD_IBAN,
    api,
    api_port,
    approval_timeout,
    poll_interval,
    rail,
    rail_payment,
    settings,
    submit_max_attempts,
    webhooks_enabled,
    wrong_totp,
)
from tests.rail_support import eventually
from tests.sweep_books import Books
from tests.sweep_requests import Account, Generator, World, _phase

SETTLE_SECONDS: Final = 30.0


async def _account(sessions: SessionFactory, owner: uuid.UUID, currency: str, name: str) -> Account:
    opened = await open_account(sessions, owner, currency, name)
    return Account(str(opened.account_id), opened.number, currency)


async def _status(sessions: SessionFactory, payment_id: str) -> str:
    async with sessions() as session:
        return str(
            await session.scalar(
                text("SELECT status FROM payments WHERE id = :id"), {"id": uuid.UUID(payment_id)}
            )
        )


async def _wait_for(sessions: SessionFactory, payment_id: str, *wanted: str) -> None:
    async def probe() -> bool | None:
        return True if await _status(sessions, payment_id) in wanted else None

    await eventually(probe, max_wait=15, interval=0.05)


async def _post(
    api: httpx.AsyncClient, path: str, auth: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    answer = await api.post(path, headers=auth | {"Idempotency-Key": str(uuid.uuid4())}, json=body)
    assert answer.status_code in (200, 201, 202), answer.text
    result: dict[str, Any] = answer.json()
    return result


async def _world(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory, outbox: MemoryEmailBackend
) -> World:
    """Two funded customers; the victim has a beneficiary, a completed transfer, a payment
    awaiting its approval, a link and a memo (things the attacker will try to touch)."""
    attacker = await register_customer(api, outbox, "mallory@example.com")
    profile = (await api.get("/api/auth/profile", headers=attacker.auth)).json()
    attacker_id = uuid.UUID(profile["id"])
    main = (await api.get("/api/accounts", headers=attacker.auth)).json()["items"][0]
    victim_id = await new_user(sessions, "victor")
    victim_token = (await SessionService(services).issue_session(victim_id)).access_token
    world = World(
        attacker=attacker,
        attacker_id=attacker_id,
        victim_id=victim_id,
        victim_auth={"Authorization": f"Bearer {victim_token}"},
        a_main=Account(str(main["id"]), str(main["number"]), "EUR"),
        a_spare=await _account(sessions, attacker_id, "EUR", "Spare"),
        a_usd=await _account(sessions, attacker_id, "USD", "Dollars"),
        v_main=await _account(sessions, victim_id, "EUR", "Main"),
        v_spare=await _account(sessions, victim_id, "EUR", "Savings"),
        services=services,
    )
    for account, minor in (
        (world.a_main, 2_000_000),
        (world.a_spare, 1_000),
        (world.a_usd, 10_000),
        (world.v_main, 1_000_000),
    ):
        await fund(sessions, account.id, minor, account.currency)
    v, v_auth = world.v_main, world.victim_auth
    method = await _post(
        api, "/api/payments/methods", v_auth, {"name": "Landlord", "iban": GOOD_IBAN}
    )
    own = await _post(
        api,
        "/api/payments/transfer",
        v_auth,
        {
            "from_account_id": v.id,
            "to_account_id": world.v_spare.id,
            "amount": "1.00",
            "currency": "EUR",
        },
    )
    pending = await _post(
        api,
        "/api/payments/external",
        v_auth,
        {
            "from_account_id": v.id,
            "payment_method_id": method["id"],
            "amount": "1500.00",
            "currency": "EUR",
        },
    )
    await _post(
        api, f"/api/accounts/{v.id}/link", v_auth, {"iban": GOOD_IBAN, "holder_name": "Victor"}
    )
    await _post(
        api,
        "/api/transactions",
        v_auth,
        {"account_id": v.id, "amount": "3.50", "currency": "EUR", "merchant": "Bakery"},
    )
    await _wait_for(sessions, own["id"], "completed")
    await _wait_for(sessions, pending["id"], "pending_approval")
    return world


async def _attacker_setup(api: httpx.AsyncClient, sessions: SessionFactory, world: World) -> None:
    """The attacker's own beneficiary and a large payment awaiting its approval."""
    auth = world.attacker.auth
    method = await _post(api, "/api/payments/methods", auth, {"name": "Me", "iban": GOOD_IBAN})
    pending = await _post(
        api,
        "/api/payments/external",
        auth,
        {
            "from_account_id": world.a_main.id,
            "payment_method_id": method["id"],
            "amount": "1500.00",
            "currency": "EUR",
        },
    )
    await _wait_for(sessions, pending["id"], "pending_approval")


async def _settle(api: httpx.AsyncClient, sessions: SessionFactory, world: World) -> None:
    """Let every payment reach a final status: approvals nobody gave are cancelled by their
    owners (the attacker's by the attacker, the victim's by the victim), the rest finish."""

    async def open_payments() -> list[Any]:
        async with sessions() as session:
            rows = await session.execute(
                text("SELECT id, user_id, status FROM payments WHERE NOT status = ANY(:final)"),
                {"final": list(FINAL)},
            )
            return list(rows.all())

    for row in await open_payments():
        if row.status in ("pending_approval", "requires_action", "scheduled"):
            auth = world.attacker.auth if row.user_id == world.attacker_id else world.victim_auth
            answer = await api.post(f"/api/payments/{row.id}/cancel", headers=auth)
            assert answer.status_code in (200, 409), answer.text

    async def all_final() -> bool | None:
        return True if not await open_payments() else None

    await eventually(all_final, max_wait=SETTLE_SECONDS, interval=0.1)


def test_the_openapi_lists_every_route_the_app_serves() -> None:
    """The sweep walks the OpenAPI, so a route left out of it would escape: there is none."""
    app = create_app()
    spec = app.openapi()
    listed = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert served <= listed, f"served but not in the OpenAPI: {sorted(served - listed)}"
    assert listed, "the OpenAPI lists no operation"


async def test_no_route_lets_a_customer_create_money_or_pay_out_without_the_rail(
    api: httpx.AsyncClient,
    rail: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    engine: AsyncEngine,
    outbox: MemoryEmailBackend,
) -> None:
    world = await _world(api, services, sessions, outbox)
    books = await Books.open(engine, world)
    await _attacker_setup(api, sessions, world)
    await books.check(engine, rail, "the attacker's setup")
    spec = create_app(services.settings, services).openapi()
    operations = [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]
    generator = Generator(spec, world)
    called: set[tuple[str, str]] = set()
    problems: list[str] = []
    calls = 0
    for method, path, op in sorted(operations, key=_phase):
        await world.refresh(sessions)
        for call in generator.calls(method, path, op):
            response = await api.request(
                method,
                call.url,
                params=call.params,
                headers=call.headers,
                json=call.body if call.raw is None and call.body is not None else None,
                content=call.raw,
            )
            calls += 1
            called.add((method, path))
            if response.status_code >= 500:
                problems.append(f"server error: {call.describe(response)}")
            if call.feed and response.status_code != 401:
                problems.append(f"forged feed delivery not refused: {call.describe(response)}")
            if call.uses_totp:
                await world.sync_totp(sessions)
            await books.check(engine, rail, call.describe(response))
            if path.startswith("/api/auth"):
                await world.keep_session(api)

    assert called == {(m, p) for m, p, _ in operations}, "the sweep skipped operations"
    assert calls >= 2 * len(operations), f"only {calls} calls for {len(operations)} operations"
    await _settle(api, sessions, world)
    await books.check(engine, rail, "the workflows finished", final=True)
    await assert_ledger_ok(sessions)
    assert not problems, "\n".join(problems)
