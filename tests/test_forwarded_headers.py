"""Forwarded headers are the application's business: uvicorn never rewrites the client from
X-Forwarded-For (core/http_server.py), and the gateway believes that header only from the
peers in VORTEX_TRUSTED_PROXIES (decision 86)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

import httpx
import uvicorn

from core.db import SessionFactory
from core.embedded import free_port
from core.http_server import server_config
from core.settings import Settings
from tests.gateway_support import gateway_env, put_route, served

SPOOFED = {"x-forwarded-for": "198.51.100.66"}


async def _client_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering with the client address uvicorn gave it."""
    if scope["type"] != "http":
        return
    body = str(scope["client"][0]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _client_seen(config: uvicorn.Config) -> str:
    async with served(config) as url, httpx.AsyncClient() as http:
        answer = await http.get(f"{url}/", headers=SPOOFED)
    return answer.text


async def test_our_servers_keep_the_peer_address_whatever_x_forwarded_for_says() -> None:
    ours = server_config(_client_echo, host="127.0.0.1", port=free_port(), lifespan="off")
    # uvicorn's default trusts 127.0.0.1 and takes the header's word: the hole this closes.
    default = uvicorn.Config(
        _client_echo, host="127.0.0.1", port=free_port(), lifespan="off", log_config=None
    )
    assert await _client_seen(ours) == "127.0.0.1"
    assert await _client_seen(default) == "198.51.100.66"


async def test_the_gateway_buckets_anonymous_canaries_by_the_forwarded_client_of_a_trusted_peer(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "canary", canary_percent=50)
    trusted = {"trusted_proxies": [ipaddress.ip_network("203.0.113.0/24")]}  # the test peer
    clients = [f"198.51.100.{n}" for n in range(1, 41)]
    async with gateway_env(settings, **trusted) as env:
        await env.gateway.routes.reload()
        sides = Counter[str]()
        for ip in clients:
            answer = await env.client.get("/api/accounts", headers={"x-forwarded-for": ip})
            sides[answer.json()["side"]] += 1
        chains = [seen.headers["x-forwarded-for"] for seen in [*env.legacy.seen, *env.new.seen]]
    assert sides["new"] > 0  # 40 clients are bucketed, not one peer
    assert sides["legacy"] > 0
    # Each upstream request names its client, then the peer the gateway saw (appended once).
    assert sorted(chains) == sorted(f"{ip}, 203.0.113.7" for ip in clients)


async def test_the_gateway_ignores_x_forwarded_for_from_an_untrusted_peer(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "canary", canary_percent=50)
    async with gateway_env(settings, trusted_proxies=[]) as env:
        await env.gateway.routes.reload()
        sides = {
            (
                await env.client.get(
                    "/api/accounts", headers={"x-forwarded-for": f"198.51.100.{n}"}
                )
            ).json()["side"]
            for n in range(1, 41)
        }
        seen = [*env.legacy.seen, *env.new.seen][-1].headers["x-forwarded-for"]
    assert len(sides) == 1  # every request is the peer's: one bucket
    assert seen.endswith(", 203.0.113.7")
