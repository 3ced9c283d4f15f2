"""Bad input on `/ws`: each gets a clear error frame, leaks nothing and changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import jwt
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from api.services import Services
from core.email import MemoryEmailBackend
from tests.flows import Customer, register_customer
from tests.ws_support import (
    closed_with,
    live_api,
    of_type,
    opened,
    publish,
    recv,
    recv_until,
    settings,
    ws_overrides,
    ws_url,
)

__all__ = ["live_api", "settings", "ws_overrides"]


@pytest.fixture
async def alice(live_api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer."""
    return await register_customer(live_api, outbox, "alice@example.com")


async def _first_message_answer(
    live_api: httpx.AsyncClient, message: str | bytes, *, path: str = ""
) -> tuple[int | None, list[dict[str, Any]]]:
    async with connect(ws_url(live_api) + path) as ws:
        await ws.send(message)
        return await closed_with(ws)


async def _round_trip(ws: ClientConnection) -> list[dict[str, Any]]:
    """Everything the server sends before answering a ping (so nothing else is in flight)."""
    await ws.send('{"type": "ping"}')
    return await recv_until(ws, of_type("pong"))


async def test_no_token_is_refused_with_an_error_frame(live_api: httpx.AsyncClient) -> None:
    code, frames = await _first_message_answer(live_api, '{"type": "auth"}')
    assert code == 4401
    assert frames[0]["type"] == "error"
    assert frames[0]["data"]["code"] == "token-missing"


async def test_a_token_in_the_query_string_is_ignored(
    live_api: httpx.AsyncClient, alice: Customer
) -> None:
    code, frames = await _first_message_answer(
        live_api, '{"type": "auth"}', path=f"?token={alice.access_token}"
    )
    assert code == 4401
    assert frames[0]["data"]["code"] == "token-missing"


async def test_an_expired_token_is_refused(
    live_api: httpx.AsyncClient, alice: Customer, services: Services
) -> None:
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    expired, _ = services.tokens.issue(uuid.UUID(claims["sub"]), "access", -5, sid=claims["sid"])
    code, frames = await _first_message_answer(
        live_api, json.dumps({"type": "auth", "token": expired})
    )
    assert code == 4401
    assert frames[0]["data"]["code"] == "token-invalid"
    assert "expired" in str(frames[0]["data"]["message"])


@pytest.mark.parametrize("kind", ["forged", "refresh", "garbage"])
async def test_a_forged_or_wrong_kind_of_token_is_refused(
    live_api: httpx.AsyncClient, alice: Customer, kind: str
) -> None:
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    token = {
        "forged": jwt.encode(claims, "not-the-server-key-0123456789abcdef", algorithm="HS256"),
        "refresh": alice.refresh_token,
        "garbage": "a.b.c",
    }[kind]
    code, frames = await _first_message_answer(
        live_api, json.dumps({"type": "auth", "token": token})
    )
    assert code == 4401
    assert frames[0]["data"]["code"] == "token-invalid"


@pytest.mark.parametrize(
    ("first", "error"),
    [
        (b"\x00\x01binary", "binary-not-supported"),
        ("not json", "malformed"),
        ("[1, 2]", "malformed"),
        ('{"type": "subscribe", "channels": []}', "auth-required"),
        ('{"type": "auth", "token": "' + "x" * 5000 + '"}', "message-too-large"),
    ],
)
async def test_a_bad_first_message_gets_an_error_frame_and_a_close(
    live_api: httpx.AsyncClient, first: str | bytes, error: str
) -> None:
    code, frames = await _first_message_answer(live_api, first)
    assert code == 4400
    assert [f["data"]["code"] for f in frames] == [error]


async def test_silence_instead_of_auth_closes_after_the_auth_timeout(
    live_api: httpx.AsyncClient,
) -> None:
    async with connect(ws_url(live_api)) as ws:
        code, frames = await closed_with(ws)
    assert code == 4401
    assert frames[0]["data"]["code"] == "auth-timeout"


async def test_the_token_may_come_as_a_subprotocol_and_the_accepted_one_is_echoed(
    live_api: httpx.AsyncClient, alice: Customer
) -> None:
    offered = [Subprotocol("vortex.v1"), Subprotocol(f"bearer.{alice.access_token}")]
    async with connect(ws_url(live_api), subprotocols=offered) as ws:
        assert ws.subprotocol == "vortex.v1"
        await ws.send('{"type": "auth"}')
        assert (await recv(ws))["type"] == "ready"


async def test_other_users_and_unknown_channels_are_refused_alike_and_send_no_data(
    live_api: httpx.AsyncClient, outbox: MemoryEmailBackend, alice: Customer, redis: Redis
) -> None:
    bob = await register_customer(live_api, outbox, "bob@example.com")
    bob_acc = (await live_api.get("/api/accounts", headers=bob.auth)).json()["items"][0]
    own_acc = (await live_api.get("/api/accounts", headers=alice.auth)).json()["items"][0]
    async with opened(live_api, bob.access_token) as (_, bob_ready):
        bob_id = bob_ready["data"]["user_id"]
    foreign = [f"user.{bob_id}", f"account.{bob_acc['id']}", f"account.{uuid.uuid4()}", "admin.x"]
    async with opened(live_api, alice.access_token, channels=[]) as (ws, ready):
        assert ready["data"]["channels"] == []
        await ws.send(json.dumps({"type": "subscribe", "channels": foreign}))
        answer = await recv_until(ws, of_type("subscribed"))
        errors = [f for f in answer if f["type"] == "error"]
        assert [f["data"]["channel"] for f in errors] == foreign
        assert len({(f["data"]["code"], f["data"]["message"]) for f in errors}) == 1
        assert answer[-1]["data"]["channels"] == []
        await ws.send(json.dumps({"type": "subscribe", "channels": [f"account.{own_acc['id']}"]}))
        assert (await recv_until(ws, of_type("subscribed")))[-1]["data"]["channels"] == [
            f"account.{own_acc['id']}"
        ]
        await publish(redis, 1, "balance.updated", bob_id, {"account_id": bob_acc["id"]})
        own_id = ready["data"]["user_id"]
        await publish(redis, 2, "balance.updated", own_id, {"account_id": own_acc["id"]})
        delivered = await recv_until(ws, of_type("balance.updated"))
        assert delivered[-1]["event_id"] == "2"  # bob's event (id 1) never reached alice
        assert delivered[-1]["channel"] == f"account.{own_acc['id']}"
        assert [f for f in await _round_trip(ws) if f["type"] != "pong"] == []


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"\x00binary", "binary-not-supported"),
        ("{nope", "malformed"),
        ('{"no": "type"}', "malformed"),
        ('{"type": "subscribe", "channels": "user.x"}', "malformed"),
        ('{"type": "launch"}', "unknown-type"),
        (json.dumps({"type": "subscribe", "channels": ["x" * 5000]}), "message-too-large"),
    ],
)
async def test_a_bad_message_on_an_open_socket_gets_an_error_frame_and_changes_nothing(
    live_api: httpx.AsyncClient, alice: Customer, message: str | bytes, error: str
) -> None:
    async with opened(live_api, alice.access_token) as (ws, ready):
        await ws.send(message)
        answer = await _round_trip(ws)
        assert [f["data"]["code"] for f in answer if f["type"] == "error"] == [error]
        await ws.send('{"type": "subscribe", "channels": []}')
        after = await recv_until(ws, of_type("subscribed"))
        assert after[-1]["data"]["channels"] == ready["data"]["channels"]


@pytest.mark.parametrize("ws_overrides", [{"ws_inbound_burst": 10, "ws_inbound_rate": 1.0}])
async def test_a_flood_of_subscribe_messages_is_cut_off(
    live_api: httpx.AsyncClient, alice: Customer
) -> None:
    async with opened(live_api, alice.access_token, channels=[]) as (ws, _):
        for n in range(50):
            await ws.send(json.dumps({"type": "subscribe", "channels": ["global.announcements"]}))
            if n % 10 == 0:
                await asyncio.sleep(0)
        code, frames = await closed_with(ws)
    assert code == 4429
    errors = [f["data"]["code"] for f in frames if f["type"] == "error"]
    assert errors == ["rate-limited"]
    assert len([f for f in frames if f["type"] == "subscribed"]) <= 10
