"""When `/ws` closes a socket: token expiry, revocation (logout elsewhere, refresh reuse,
disabling, the periodic re-check), silence, a slow consumer, the per-user connection limit —
also across two API processes."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from api.auth.user_status import REVOKED_FAMILY_KEY, set_user_status
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from models.identity.tables import UserStatus
from tests.events_support import until
from tests.flows import Customer, register_customer
from tests.ws_support import (
    closed_with,
    live_api,
    of_type,
    opened,
    publish,
    recv,
    recv_until,
    serve_api,
    settings,
    ws_overrides,
    ws_url,
)

__all__ = ["live_api", "settings", "ws_overrides"]


@pytest.fixture
async def alice(live_api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer."""
    return await register_customer(live_api, outbox, "alice@example.com")


def _claims(customer: Customer) -> dict[str, Any]:
    return dict(jwt.decode(customer.access_token, options={"verify_signature": False}))


async def test_the_socket_closes_when_its_token_expires(
    live_api: httpx.AsyncClient, alice: Customer, services: Services
) -> None:
    claims = _claims(alice)
    # 4 s: still valid when a loaded machine gets the socket open (see the renewal test).
    short, _ = services.tokens.issue(uuid.UUID(claims["sub"]), "access", 4, sid=claims["sid"])
    async with opened(live_api, short) as (ws, _):
        code, frames = await closed_with(ws)
    assert code == 4401
    assert frames[-1]["data"]["code"] == "token-expired"


async def test_a_fresh_token_sent_on_the_socket_keeps_it_open_past_the_old_expiry(
    live_api: httpx.AsyncClient, alice: Customer, services: Services
) -> None:
    claims = _claims(alice)
    # 5 s: long enough to still be valid when a loaded machine gets the socket open (2 s was
    # not, once), short enough to wait past.
    short, _ = services.tokens.issue(uuid.UUID(claims["sub"]), "access", 5, sid=claims["sid"])
    async with opened(live_api, short) as (ws, _):
        await ws.send(json.dumps({"type": "auth", "token": alice.access_token}))
        renewed = await recv_until(ws, of_type("auth.renewed"))
        assert renewed[-1]["data"]["expires_at"] == claims["exp"]
        for _ in range(24):  # > 6 s of heartbeats: past the short token's expiry
            assert (await recv(ws, skip_pings=False))["type"] == "ping"


async def test_refresh_token_reuse_closes_the_socket_of_that_session(
    live_api: httpx.AsyncClient, alice: Customer
) -> None:
    async with opened(live_api, alice.access_token) as (ws, _):
        first = await live_api.post(
            "/api/auth/refresh", json={"refresh_token": alice.refresh_token}
        )
        assert first.status_code == 200, first.text
        reused = await live_api.post(
            "/api/auth/refresh", json={"refresh_token": alice.refresh_token}
        )
        assert reused.status_code == 401
        code, _frames = await closed_with(ws)
    assert code == 4403


async def test_disabling_the_user_closes_the_socket(
    live_api: httpx.AsyncClient,
    alice: Customer,
    sessions: SessionFactory,
    redis: Redis,
    services: Services,
) -> None:
    async with opened(live_api, alice.access_token) as (ws, ready):
        await set_user_status(
            sessions,
            redis,
            services.settings,
            uuid.UUID(ready["data"]["user_id"]),
            UserStatus.DISABLED,
            reason="test",
            actor="test",
        )
        code, _frames = await closed_with(ws)
    assert code == 4403


@pytest.mark.parametrize("ws_overrides", [{"ws_recheck_seconds": 0.3}])
async def test_a_revocation_missed_on_pub_sub_is_caught_by_the_periodic_recheck(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis
) -> None:
    async with opened(live_api, alice.access_token) as (ws, _):
        await redis.set(REVOKED_FAMILY_KEY.format(_claims(alice)["sid"]), "1")  # no publish
        code, _frames = await closed_with(ws)
    assert code == 4403


@pytest.mark.parametrize("ws_overrides", [{"ws_idle_timeout_seconds": 0.8}])
async def test_a_client_that_never_answers_the_heartbeat_is_closed(
    live_api: httpx.AsyncClient, alice: Customer
) -> None:
    async with opened(live_api, alice.access_token) as (ws, _):
        code, frames = await closed_with(ws)  # reads, never answers a ping
    assert code == 4408
    assert {f["type"] for f in frames[:-1]} == {"ping"}
    assert frames[-1]["data"]["code"] == "idle-timeout"


def _unread_socket(url: str) -> socket.socket:
    """A connected TCP socket with a tiny receive buffer (a client that stops reading)."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.setblocking(False)
    return sock


# The server's kernel send buffer may grow to 4 MB (tcp_wmem): 10 MB of frames overflow it and
# a queue of 8 frames by far.
@pytest.mark.parametrize("ws_overrides", [{"ws_queue_size": 8}])
async def test_a_slow_consumer_is_disconnected_instead_of_buffered(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis
) -> None:
    url = ws_url(live_api)
    # No compression: the frames must really be 50 kB on the wire.
    async with connect(url, sock=_unread_socket(url), max_queue=1, compression=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": alice.access_token}))
        ready = await recv(ws)
        user_id = ready["data"]["user_id"]
        big = {"account_id": str(uuid.uuid4()), "memo": "x" * 50_000}
        for n in range(1, 201):
            await publish(redis, n, "transaction.created", user_id, big)
        code, frames = await closed_with(ws)
    assert code == 4409
    assert 0 < len([f for f in frames if f["type"] == "transaction.new"]) < 200
    leases = f"ws:connections:{user_id}"
    await until(lambda: _count_is(redis, leases, 0))


async def _count_is(redis: Redis, key: str, wanted: int) -> bool:
    return int(await redis.zcard(key)) == wanted


async def test_a_user_gets_at_most_the_limit_of_sockets_across_two_api_processes(
    live_api: httpx.AsyncClient, alice: Customer, services: Services, redis: Redis
) -> None:
    async with (
        serve_api(services) as other,
        opened(live_api, alice.access_token) as (_, ready),
        opened(live_api, alice.access_token),
        opened(other, alice.access_token) as (third, _),
    ):
        for base in (live_api, other):
            async with connect(ws_url(base)) as extra:
                await extra.send(json.dumps({"type": "auth", "token": alice.access_token}))
                code, frames = await closed_with(extra)
            assert code == 4429
            assert frames[-1]["data"]["code"] == "too-many-connections"
        await third.close()
        leases = f"ws:connections:{ready['data']['user_id']}"
        await until(lambda: _count_is(redis, leases, 2))
        async with opened(other, alice.access_token) as (_, again):
            assert again["type"] == "ready"


async def test_each_api_process_serves_its_own_sockets_and_closes_them_on_logout_elsewhere(
    live_api: httpx.AsyncClient, alice: Customer, services: Services, redis: Redis
) -> None:
    async with (
        serve_api(services) as other,
        opened(live_api, alice.access_token) as (here, ready),
        opened(other, alice.access_token) as (there, _),
    ):
        await publish(redis, 7, "balance.updated", ready["data"]["user_id"], {"posted": 1})
        for ws in (here, there):
            got = await recv_until(ws, of_type("balance.updated"))
            assert [f["event_id"] for f in got if "event_id" in f] == ["7"]
        out = await live_api.post("/api/auth/logout", headers=alice.auth)
        assert out.status_code in (200, 204), out.text
        for ws in (there, here):
            code, frames = await closed_with(ws)
            assert code == 4403
            assert frames[-1]["data"]["code"] == "session-revoked"
