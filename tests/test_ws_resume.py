"""Resuming `/ws` by the last event id: exactly once across the three streams while events keep
coming, repeats of a relay re-publish dropped, and `resync` when the history is gone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from api.ws import cursor
from api.ws.hub import Hub
from core.email import MemoryEmailBackend
from core.settings import Settings
from tests.flows import Customer, register_customer
from tests.ws_support import (
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

STREAMS = ("transaction.events", "payment.events", "user.events")


@pytest.fixture
async def alice(live_api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer."""
    return await register_customer(live_api, outbox, "alice@example.com")


async def _user_id(live_api: httpx.AsyncClient, who: Customer) -> str:
    async with opened(live_api, who.access_token) as (_, ready):
        return str(ready["data"]["user_id"])


def _event(n: int) -> tuple[str, str]:
    """Event n's stream and type: the three streams take turns."""
    stream = STREAMS[n % 3]
    kind = {"transaction.events": "balance.updated", "payment.events": "payment.updated"}
    return stream, kind.get(stream, "notification.new")


# A queue large enough for the burst: this test is about gaps, not slow consumers.
@pytest.mark.parametrize("ws_overrides", [{"ws_queue_size": 5000}])
async def test_a_reconnect_while_events_keep_coming_loses_and_repeats_nothing(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis
) -> None:
    user_id = await _user_id(live_api, alice)
    total = 1500  # published as fast as Redis takes them: some arrive during the catch-up

    async def produce() -> None:
        for n in range(1, total + 1):
            stream, kind = _event(n)
            await publish(redis, n, kind, user_id, {"n": n}, stream=stream)

    producer = asyncio.create_task(produce())
    async with opened(live_api, alice.access_token) as (ws, _):
        first = await recv_until(ws, lambda f: f.get("event_id") == "60")
    async with opened(live_api, alice.access_token, last_event_id=first[-1]["id"]) as (ws, ready):
        assert ready["data"]["resumed"] is True
        wanted = {str(n) for n in range(61, total + 1)} - {f.get("event_id") for f in first}
        got: set[str] = set()

        def all_there(f: dict[str, Any]) -> bool:
            got.add(f.get("event_id", ""))
            return wanted <= got

        second = await recv_until(ws, all_there)
        await producer
        await ws.send('{"type": "ping"}')  # anything repeated would arrive before the answer
        second += await recv_until(ws, of_type("pong"))
    ids = [int(f["event_id"]) for f in first + second if "event_id" in f]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    for turn in range(3):  # order holds per stream (events n, n+3, ... share one)
        of_stream = [i for i in ids if i % 3 == turn]
        assert of_stream == sorted(of_stream)
    assert set(ids) >= set(range(60, total + 1)), "an event went missing across the reconnect"


async def test_the_ready_frames_id_resumes_events_published_before_any_frame_arrived(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis
) -> None:
    user_id = await _user_id(live_api, alice)
    async with opened(live_api, alice.access_token) as (_, ready):
        start = ready["id"]
    for n in range(1, 7):
        stream, kind = _event(n)
        await publish(redis, n, kind, user_id, {"n": n}, stream=stream)
    async with opened(live_api, alice.access_token, last_event_id=start) as (ws, again):
        assert again["data"]["resumed"] is True
        # History comes stream by stream (each in order), so wait for all six.
        frames = [f for f in [await recv(ws) for _ in range(6)] if "event_id" in f]
    assert sorted(int(f["event_id"]) for f in frames) == [1, 2, 3, 4, 5, 6]
    assert {f["type"] for f in frames} == {"balance.updated", "payment.updated", "notification.new"}


async def test_a_relay_republish_with_the_same_event_id_reaches_the_client_once(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis
) -> None:
    user_id = await _user_id(live_api, alice)
    async with opened(live_api, alice.access_token) as (ws, _):
        await publish(redis, 1, "balance.updated", user_id, {"n": 1})
        await publish(redis, 1, "balance.updated", user_id, {"n": 1})  # crash, re-publish
        await publish(redis, 2, "balance.updated", user_id, {"n": 2})
        got = await recv_until(ws, lambda f: f.get("event_id") == "2")
        last = got[-1]["id"]
    assert [f["event_id"] for f in got if "event_id" in f] == ["1", "2"]
    await publish(redis, 3, "balance.updated", user_id, {"n": 3})
    await publish(redis, 3, "balance.updated", user_id, {"n": 3})
    await publish(redis, 4, "balance.updated", user_id, {"n": 4})
    async with opened(live_api, alice.access_token, last_event_id=last) as (ws, _):
        again = await recv_until(ws, lambda f: f.get("event_id") == "4")
    assert [f["event_id"] for f in again if "event_id" in f] == ["3", "4"]


@pytest.mark.parametrize(
    "last_event_id",
    [
        "not-a-cursor",
        "",
        cursor.encode({s: (2**60, 0) for s in STREAMS}),  # ahead of every stream
        json.dumps({"payment.events": "1-0"}),
    ],
)
async def test_an_unknown_last_event_id_gets_a_resync_and_then_live_events(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis, last_event_id: str
) -> None:
    user_id = await _user_id(live_api, alice)
    await publish(redis, 1, "balance.updated", user_id, {"n": 1})
    async with opened(live_api, alice.access_token, last_event_id=last_event_id) as (ws, ready):
        assert ready["data"]["resumed"] is False
        resync = await recv(ws)
        assert resync["type"] == "resync"
        await publish(redis, 2, "balance.updated", user_id, {"n": 2})
        got = await recv_until(ws, of_type("balance.updated"))
    assert [f["event_id"] for f in got if "event_id" in f] == ["2"]


@pytest.mark.parametrize("ws_overrides", [{"event_stream_maxlen": 100}])
async def test_a_last_event_id_older_than_the_retention_gets_a_resync(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis
) -> None:
    user_id = await _user_id(live_api, alice)
    async with opened(live_api, alice.access_token) as (ws, _):
        await publish(redis, 1, "balance.updated", user_id, {"n": 1}, maxlen=100)
        last = (await recv_until(ws, of_type("balance.updated")))[-1]["id"]
    # The stream keeps 100: events 1 to 299 are gone (Redis 7.0 still says max-deleted 0-0).
    for n in range(2, 400):
        await publish(redis, n, "balance.updated", user_id, {"n": n}, maxlen=100)
    assert (await redis.xinfo_stream("transaction.events"))["length"] < 399
    async with opened(live_api, alice.access_token, last_event_id=last) as (ws, ready):
        assert ready["data"]["resumed"] is False
        assert (await recv(ws))["type"] == "resync"


@pytest.mark.parametrize("ws_overrides", [{"event_stream_maxlen": 100}])
async def test_a_last_event_id_inside_a_trimmed_stream_still_resumes(
    live_api: httpx.AsyncClient, alice: Customer, redis: Redis
) -> None:
    user_id = await _user_id(live_api, alice)
    for n in range(1, 111):
        await publish(redis, n, "balance.updated", user_id, {"n": n}, maxlen=100)
    async with opened(live_api, alice.access_token) as (ws, _):
        await publish(redis, 111, "balance.updated", user_id, {"n": 111}, maxlen=100)
        last = (await recv_until(ws, of_type("balance.updated")))[-1]["id"]
    await publish(redis, 112, "balance.updated", user_id, {"n": 112}, maxlen=100)
    async with opened(live_api, alice.access_token, last_event_id=last) as (ws, ready):
        assert ready["data"]["resumed"] is True
        got: list[dict[str, Any]] = await recv_until(ws, of_type("balance.updated"))
    assert [f["event_id"] for f in got if "event_id" in f] == ["112"]


async def test_approximate_trimming_past_a_cursor_is_seen_as_lost_history(
    settings: Settings, redis: Redis
) -> None:
    """The relay trims with `MAXLEN ~`: whole nodes go, and Redis 7.0 does not record them as
    deleted. A cursor before the first kept entry must not count as resumable."""
    ids = [
        await redis.xadd(
            "user.events", {"event_id": str(n), "pad": "x" * 200}, maxlen=100, approximate=True
        )
        for n in range(1, 301)
    ]
    hub = Hub(settings.model_copy(update={"event_stream_maxlen": 100}))
    try:
        assert not await hub._retained("user.events", cursor.parse_id(str(ids[0])))
        assert await hub._retained("user.events", cursor.parse_id(str(ids[-2])))
    finally:
        await hub.redis.aclose()
