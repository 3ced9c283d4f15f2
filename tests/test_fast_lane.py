"""The fast lane (api/fast_lane.py) answers the canonical dashboard reads exactly as their
regular routes do (status, media type, body) for good and bad credentials, and leaves every
other form of the request to the regular route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.routing import Match

from api.app import create_app
from api.fast_lane import FastLaneRoute, fast_lane_routes, plain_limit
from api.services import Services
from core.email import MemoryEmailBackend
from tests.flows import fund, register_customer

TAKEN = ["/api/accounts", "/api/transactions", "/api/transactions?limit=5"]
LEFT = [
    "/api/accounts?include_closed=true",
    "/api/accounts?include_closed=maybe",
    "/api/transactions?limit=0",
    "/api/transactions?limit=05",
    "/api/transactions?limit=abc",
    "/api/transactions?limit=5&limit=6",
    "/api/transactions?limit=100000",
    "/api/transactions?currency=EUR",
]


@pytest.fixture
async def regular(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The same app without its fast-lane routes: what the regular routes answer."""
    app = create_app(services.settings, services)
    app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, FastLaneRoute)]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _taken(path: str, method: str = "GET") -> bool:
    route, _, query = path.partition("?")
    scope = {"type": "http", "method": method, "path": route, "query_string": query.encode()}
    return any(lane.matches(scope)[0] == Match.FULL for lane in fast_lane_routes())


def _same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert fast.json() == slow.json()


def test_only_the_canonical_gets_take_the_fast_lane() -> None:
    assert all(_taken(path) for path in TAKEN)
    assert not any(_taken(path) for path in LEFT)
    assert not _taken("/api/accounts", "HEAD")
    assert not _taken("/api/accounts", "POST")
    assert not _taken("/api/accounts/")
    assert plain_limit(b"limit=50") == {"limit": 50}
    assert plain_limit(b"") == {"limit": 50}


async def test_the_fast_lane_answers_as_the_regular_routes_for_every_caller(
    api: httpx.AsyncClient,
    regular: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    services: Services,
) -> None:
    ada = await register_customer(api, outbox, "ada@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    main = (await api.get("/api/accounts", headers=ada.auth)).json()["items"][0]["id"]
    await fund(services.sessions, main, 12_345, "EUR")
    headers_by_caller: list[dict[str, str]] = [
        ada.auth,
        bob.auth,
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWRhOnNlY3JldA=="},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": ada.auth["Authorization"] + "x"},
    ]
    for headers in headers_by_caller:
        for path in TAKEN + LEFT:
            same_id = headers | {"X-Request-ID": "fast-lane-check"}  # problems echo it
            fast = await api.get(path, headers=same_id)
            slow = await regular.get(path, headers=same_id)
            _same(fast, slow)

    # Each caller sees only their own rows, through the lane as through the route.
    ada_rows = (await api.get("/api/transactions", headers=ada.auth)).json()["items"]
    bob_rows = (await api.get("/api/transactions", headers=bob.auth)).json()["items"]
    assert ada_rows
    assert not bob_rows
    ada_accounts = {
        a["id"] for a in (await api.get("/api/accounts", headers=ada.auth)).json()["items"]
    }
    bob_accounts = {
        a["id"] for a in (await api.get("/api/accounts", headers=bob.auth)).json()["items"]
    }
    assert main in ada_accounts
    assert not ada_accounts & bob_accounts

    # A logout refuses the token on the lane at the next request, as on the route.
    assert (await api.post("/api/auth/logout", headers=ada.auth)).status_code == 204
    for path in TAKEN:
        same_id = ada.auth | {"X-Request-ID": "fast-lane-check"}
        fast = await api.get(path, headers=same_id)
        _same(fast, await regular.get(path, headers=same_id))
        assert fast.status_code == 401
        assert fast.json()["detail"] == "session has been revoked"
