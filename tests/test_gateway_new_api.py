"""The gateway in front of the real new API (served by uvicorn): ids, problems and auth
challenges pass through unchanged."""

from __future__ import annotations

import httpx

from api.app import create_app
from api.services import Services
from core.db import SessionFactory
from gateway.app import Gateway
from tests.gateway_support import put_route, serve


async def test_the_real_api_answers_through_the_gateway_with_the_callers_request_id(
    services: Services, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/health", "new")
    await put_route(sessions, "/api/accounts", "new")
    async with serve(create_app(services.settings, services)) as api_url:
        settings = services.settings.model_copy(
            update={"gateway_new_url": api_url, "gateway_legacy_url": "http://127.0.0.1:9"}
        )
        async with Gateway(settings).running() as gateway:
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport, base_url="http://bank") as client:
                health = await client.get("/health", headers={"x-request-id": "through-gw-1"})
                denied = await client.get("/api/accounts", headers={"x-request-id": "gw-2"})
                unrouted = await client.get("/api/legacy-thing")
    assert health.status_code == 200
    assert health.headers["x-request-id"] == "through-gw-1"  # the API kept the caller's id
    assert denied.status_code == 401
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.headers["www-authenticate"] == "Bearer"
    assert denied.json()["request_id"] == "gw-2"
    assert unrouted.status_code == 502  # no route: legacy, which is down here
    assert unrouted.json()["type"].endswith("/bad-gateway")
