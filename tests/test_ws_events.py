"""`/ws` end to end: a transfer through the API reaches both customers' sockets through the
real outbox relay; a reconnect with the last id gets the missed events exactly once; logout
closes the socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
from redis.asyncio import Redis

from activities.events.relay import OutboxRelay
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from tests.events_support import until
from tests.flows import Customer, fund, register_customer
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
)

__all__ = ["live_api", "settings", "ws_overrides"]


async def _main_account(api: httpx.AsyncClient, who: Customer) -> dict[str, Any]:
    return dict((await api.get("/api/accounts", headers=who.auth)).json()["items"][0])


async def _transfer(
    api: httpx.AsyncClient, who: Customer, key: str, from_id: str, to_number: str, amount: str
) -> str:
    sent = await api.post(
        "/api/payments/transfer",
        headers=who.auth | {"Idempotency-Key": key},
        json={
            "from_account_id": from_id,
            "to_account_number": to_number,
            "amount": amount,
            "currency": "EUR",
        },
    )
    assert sent.status_code in (201, 202), sent.text
    return str(sent.json()["id"])


async def test_a_transfer_reaches_both_customers_sockets_as_balance_and_transaction_frames(
    live_api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    relay: OutboxRelay,
) -> None:
    alice = await register_customer(live_api, outbox, "alice@example.com")
    bob = await register_customer(live_api, outbox, "bob@example.com")
    a_acc, b_acc = await _main_account(live_api, alice), await _main_account(live_api, bob)
    await fund(sessions, a_acc["id"], 10_000, "EUR")
    async with (
        opened(live_api, alice.access_token) as (a_ws, a_ready),
        opened(live_api, bob.access_token) as (b_ws, _),
    ):
        assert a_ready["data"]["channels"] == sorted(
            [f"user.{a_ready['data']['user_id']}", "global.announcements"]
        )
        await _transfer(live_api, alice, "ws-1", a_acc["id"], b_acc["number"], "25.00")
        for ws, account, posted in ((a_ws, a_acc, 7_500), (b_ws, b_acc, 2_500)):
            frames = await recv_until(ws, of_type("balance.updated", posted=posted))
            news = [f for f in frames if f["type"] == "transaction.new"]
            if not news:
                frames += await recv_until(ws, of_type("transaction.new"))
                news = [f for f in frames if f["type"] == "transaction.new"]
            assert frames[-1]["data"]["account_id"] == account["id"] or news
            assert news[-1]["data"]["account_id"] == account["id"]
            assert news[-1]["data"]["amount"] == 2_500
            for f in frames:
                assert set(f) >= {"id", "type", "channel", "data", "ts", "event_id"}
                assert f["channel"].startswith("user.")


async def test_a_reconnect_with_the_last_id_gets_the_missed_events_exactly_once(
    live_api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    relay: OutboxRelay,
    redis: Redis,
) -> None:
    alice = await register_customer(live_api, outbox, "alice@example.com")
    bob = await register_customer(live_api, outbox, "bob@example.com")
    a_acc, b_acc = await _main_account(live_api, alice), await _main_account(live_api, bob)
    await fund(sessions, a_acc["id"], 10_000, "EUR")
    async with opened(live_api, bob.access_token) as (ws, ready):
        await _transfer(live_api, alice, "ws-a", a_acc["id"], b_acc["number"], "10.00")
        before = await recv_until(ws, of_type("balance.updated", posted=1_000))
        if not any(f["type"] == "transaction.new" for f in before):
            before += await recv_until(ws, of_type("transaction.new"))
    bob_channel = f"user.{ready['data']['user_id']}"
    last_id = before[-1]["id"]
    # While bob is away: two more transfers to him.
    for n in (2, 3):
        await _transfer(live_api, alice, f"ws-{n}", a_acc["id"], b_acc["number"], f"{n}.00")

    async def all_published() -> bool:
        entries: Any = await redis.xrange("transaction.events")
        return sum(1 for _, f in entries if bob_channel in f["channels"]) >= 7  # + opened

    await until(all_published)
    async with opened(live_api, bob.access_token, last_event_id=last_id) as (ws, ready):
        assert ready["data"]["resumed"] is True
        missed = await recv_until(ws, of_type("balance.updated", posted=1_500))
        # A round trip after the catch-up: anything repeated would have arrived before it.
        await ws.send('{"type": "ping"}')
        tail = await recv_until(ws, of_type("pong"))
    seen = [f["event_id"] for f in before if "event_id" in f]
    got = [f["event_id"] for f in missed + tail if "event_id" in f]
    assert len(got) == len(set(got)), "an event arrived twice"
    assert not set(got) & set(seen), "an event seen before the reconnect arrived again"
    kinds = [f["type"] for f in missed + tail]
    assert kinds.count("transaction.new") == 2, kinds
    assert kinds.count("balance.updated") == 2, kinds
    amounts = sorted(f["data"]["amount"] for f in missed + tail if f["type"] == "transaction.new")
    assert amounts == [200, 300]


async def test_logout_closes_the_open_socket_of_that_session(
    live_api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    alice = await register_customer(live_api, outbox, "alice@example.com")
    async with opened(live_api, alice.access_token) as (ws, _):
        out = await live_api.post("/api/auth/logout", headers=alice.auth)
        assert out.status_code in (200, 204), out.text
        code, _frames = await closed_with(ws)
    assert code == 4403


async def test_a_socket_of_another_session_of_the_same_user_stays_open_after_logout(
    live_api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    alice = await register_customer(live_api, outbox, "alice@example.com")
    challenge = (
        await live_api.post(
            "/api/auth/login", json={"email": alice.email, "password": alice.password}
        )
    ).json()["challenge_token"]
    second = await live_api.post(
        "/api/auth/login", json={"challenge_token": challenge, "totp_code": alice.fresh_totp()}
    )
    assert second.status_code == 200, second.text
    async with opened(live_api, second.json()["access_token"]) as (ws, _):
        await live_api.post("/api/auth/logout", headers=alice.auth)
        await ws.send('{"type": "ping"}')
        assert (await recv(ws))["type"] == "pong"


async def test_an_unsubscribed_channel_delivers_nothing_more(
    live_api: httpx.AsyncClient, outbox: MemoryEmailBackend, redis: Redis
) -> None:
    alice = await register_customer(live_api, outbox, "alice@example.com")
    async with opened(live_api, alice.access_token) as (ws, ready):
        user_id = ready["data"]["user_id"]
        await ws.send(json.dumps({"type": "unsubscribe", "channels": [f"user.{user_id}"]}))
        left = await recv_until(ws, of_type("subscribed"))
        assert left[-1]["data"]["channels"] == ["global.announcements"]
        await publish(redis, 1, "balance.updated", user_id, {"posted": 1})
        await publish(redis, 2, "announcement.new", None, {"text": "maintenance at 2am"})
        got = await recv_until(ws, of_type("notification.new"))
    assert [(f["event_id"], f["channel"]) for f in got] == [("2", "global.announcements")]
