"""The outbox relay: every committed event reaches its Redis stream once in normal operation,
in commit order per aggregate, again with the same id after a crash, and from one leader."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.events.catalogue import EVENT_TYPES
from activities.events.relay import OutboxRelay, RelayConfig
from core.db import asyncpg_dsn
from core.email import MemoryEmailBackend
from core.settings import Settings
from tests.events_support import outbox_ids, stream_events, until, write_outbox_rows
from tests.flows import fund, register_customer


def _relay(database_url: str, redis: Redis, **config: Any) -> OutboxRelay:
    return OutboxRelay(asyncpg_dsn(database_url), redis, RelayConfig(**config))


async def _all_published(engine: AsyncEngine, count: int) -> bool:
    return len(await outbox_ids(engine, published=True)) == count


async def test_a_transfer_publishes_ledger_and_payment_events_to_both_customers_channels(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    relay: OutboxRelay,
    redis: Redis,
    engine: AsyncEngine,
    sessions: Any,
) -> None:
    alice = await register_customer(api, outbox, "alice@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    a_acc = (await api.get("/api/accounts", headers=alice.auth)).json()["items"][0]
    b_acc = (await api.get("/api/accounts", headers=bob.auth)).json()["items"][0]
    await fund(sessions, a_acc["id"], 10_000, "EUR")
    sent = await api.post(
        "/api/payments/transfer",
        headers=alice.auth | {"Idempotency-Key": "relay-1"},
        json={
            "from_account_id": a_acc["id"],
            "to_account_number": b_acc["number"],
            "amount": "25.00",
            "currency": "EUR",
        },
    )
    assert sent.status_code in (201, 202), sent.text
    payment_id = sent.json()["id"]

    async def completed_published() -> bool:
        return any(
            e["type"] == "payment.completed" and e["data"]["payment_id"] == payment_id
            for e in await stream_events(redis, "payment.events")
        )

    await until(completed_published)
    events = await stream_events(redis)
    payment_types = [e["type"] for e in events if e["aggregate_id"] == payment_id]
    assert payment_types[0] == "payment.initiated"
    assert payment_types[-1] == "payment.completed"
    for who, account in ((alice, a_acc), (bob, b_acc)):
        on_account = [e for e in events if f"account.{account['id']}" in e["channels"]]
        kinds = {e["type"] for e in on_account if e["stream"] == "transaction.events"}
        assert {"balance.updated", "transaction.created"} <= kinds, (who.email, kinds)
        owner = {e["user_id"] for e in on_account}
        assert len(owner) == 1
        assert f"user.{owner.pop()}" in on_account[0]["channels"]
    last_balance = [
        e["data"]
        for e in events
        if e["type"] == "balance.updated" and e["data"]["account_id"] == b_acc["id"]
    ][-1]
    assert last_balance["posted"] == 2_500
    # Every payload has exactly the fields the catalogue (docs/asyncapi.json) documents.
    fields = {e.name: set(e.payload) for e in EVENT_TYPES}
    for event in events:
        assert set(event["data"]) == fields[event["type"]], event["type"]
    # Every stream entry is a row of the outbox, published once, and every row is marked.
    ids = [int(e["event_id"]) for e in events]
    assert sorted(ids) == await outbox_ids(engine) == await outbox_ids(engine, published=True)


async def test_rows_are_published_in_id_order_per_aggregate_and_marked_published(
    engine: AsyncEngine, relay: OutboxRelay, redis: Redis
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    await write_outbox_rows(engine, 700, aggregate=first)  # more than one batch
    await write_outbox_rows(engine, 300, topic="payment.events", aggregate=second)
    await until(lambda: _all_published(engine, 1000))
    events = await stream_events(redis)
    assert len(events) == 1000
    for aggregate in (first, second):
        ids = [int(e["event_id"]) for e in events if e["aggregate_id"] == str(aggregate)]
        assert ids == sorted(ids)
        assert [e["data"]["n"] for e in events if e["aggregate_id"] == str(aggregate)] == list(
            range(1, len(ids) + 1)
        )
    assert {e["stream"] for e in events if e["aggregate_id"] == str(second)} == {"payment.events"}


async def test_a_committed_row_wakes_the_relay_without_waiting_for_the_poll(
    database_url: str, engine: AsyncEngine, redis: Redis
) -> None:
    relay = _relay(database_url, redis, poll_interval_seconds=120)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await until(lambda: _leader(relay))
        await asyncio.sleep(0.2)  # let it settle into its (long) wait
        await write_outbox_rows(engine, 3)
        await until(lambda: _all_published(engine, 3), max_wait=10)
    finally:
        stop.set()
        await task


async def _leader(relay: OutboxRelay) -> bool:
    return relay.is_leader


class _CrashBeforeMarking(OutboxRelay):
    """A relay whose connection dies after its first XADDs and before it marks them."""

    crashed = False

    async def _mark_published(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        if not self.crashed:
            self.crashed = True
            raise ConnectionResetError("connection lost between publish and mark")
        await super()._mark_published(conn, ids)


async def test_a_relay_that_dies_between_publish_and_mark_republishes_with_the_same_ids(
    database_url: str, engine: AsyncEngine, redis: Redis
) -> None:
    await write_outbox_rows(engine, 120)
    relay = _CrashBeforeMarking(
        asyncpg_dsn(database_url), redis, RelayConfig(batch_size=50, reconnect_seconds=0.05)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await until(lambda: _all_published(engine, 120))
    finally:
        stop.set()
        await task
    assert relay.crashed
    events = await stream_events(redis)
    counts = Counter(e["event_id"] for e in events)
    assert set(counts) == {str(i) for i in await outbox_ids(engine)}  # nothing lost
    repeated = sorted(int(i) for i, n in counts.items() if n > 1)
    assert len(repeated) == 50
    assert all(counts[str(i)] == 2 for i in repeated)
    for event_id in repeated:  # a repeat is the same event: same id, same content
        copies = [e for e in events if e["event_id"] == str(event_id)]
        assert copies[0]["data"] == copies[1]["data"]
        assert copies[0]["ts"] == copies[1]["ts"]


async def test_a_killed_relay_process_loses_nothing_and_repeats_carry_the_same_id(
    settings: Settings, database_url: str, redis_url: str, engine: AsyncEngine, redis: Redis
) -> None:
    await write_outbox_rows(engine, 4000)
    env = os.environ | {
        "VORTEX_DATABASE_URL": database_url,
        "VORTEX_REDIS_URL": redis_url,
        "VORTEX_SECRET_KEY": settings.secret_key.get_secret_value(),
        "VORTEX_RELAY_BATCH_SIZE": "20",
        "VORTEX_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "cli.main", "relay"]
    first = await asyncio.create_subprocess_exec(*command, env=env)
    try:
        await until(lambda: _published_at_least(engine, 200), max_wait=60)
    finally:
        first.send_signal(signal.SIGKILL)  # mid-run: no clean shutdown of any kind
        await first.wait()
    assert len(await outbox_ids(engine, published=False)) > 0, "it finished before the kill"
    second = await asyncio.create_subprocess_exec(*command, env=env)
    try:
        await until(lambda: _all_published(engine, 4000), max_wait=120)
    finally:
        second.send_signal(signal.SIGTERM)
        assert await second.wait() == 0
    events = await stream_events(redis)
    assert {e["event_id"] for e in events} == {str(i) for i in await outbox_ids(engine)}
    by_id: dict[str, dict[str, Any]] = {}
    for event in events:
        kept = by_id.setdefault(event["event_id"], event)
        assert kept["data"] == event["data"]  # a repeat carries the same id and content


async def _published_at_least(engine: AsyncEngine, count: int) -> bool:
    return len(await outbox_ids(engine, published=True)) >= count


async def test_two_relays_at_once_publish_each_event_once(
    database_url: str, engine: AsyncEngine, redis: Redis
) -> None:
    relays = [_relay(database_url, redis, batch_size=25, poll_interval_seconds=0.05)]
    relays.append(_relay(database_url, redis, batch_size=25, poll_interval_seconds=0.05))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        for _ in range(10):  # written while both run
            await write_outbox_rows(engine, 60)
            await asyncio.sleep(0.02)
        await until(lambda: _all_published(engine, 600))
        assert sum(r.is_leader for r in relays) == 1
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    counts = Counter(e["event_id"] for e in await stream_events(redis))
    assert len(counts) == 600
    assert set(counts.values()) == {1}


async def test_the_standby_takes_over_when_the_leader_stops(
    database_url: str, engine: AsyncEngine, redis: Redis
) -> None:
    leader_stop, standby_stop = asyncio.Event(), asyncio.Event()
    leader = _relay(database_url, redis, poll_interval_seconds=0.05)
    standby = _relay(database_url, redis, poll_interval_seconds=0.05)
    leading = asyncio.create_task(leader.run(leader_stop))
    await until(lambda: _leader(leader))
    standing = asyncio.create_task(standby.run(standby_stop))
    try:
        await write_outbox_rows(engine, 5)
        await until(lambda: _all_published(engine, 5))
        assert not standby.is_leader
        leader_stop.set()
        await leading
        await until(lambda: _leader(standby))
        await write_outbox_rows(engine, 5)
        await until(lambda: _all_published(engine, 10))
    finally:
        leader_stop.set()
        standby_stop.set()
        await asyncio.gather(leading, standing)
    assert len(await stream_events(redis)) == 10


async def test_published_rows_are_pruned_after_the_retention_and_unpublished_ones_kept(
    database_url: str, engine: AsyncEngine, redis: Redis
) -> None:
    await write_outbox_rows(engine, 10)
    async with engine.begin() as conn:  # six of them published long ago, one not published
        await conn.execute(
            text(
                "UPDATE outbox SET published_at = now() - interval '8 days' "
                "WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 6)"
            )
        )
        await conn.execute(text("UPDATE outbox SET created_at = now() - interval '9 days'"))
    relay = _relay(database_url, redis, retention_seconds=7 * 24 * 3600)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        assert await relay.prune(conn) == 6
        assert await relay.publish_batch(conn) == 4
        assert await relay.prune(conn) == 0  # just published: inside the retention
    finally:
        await conn.close()
    assert len(await outbox_ids(engine)) == 4


async def test_metrics_show_the_outbox_backlog_and_the_relay_lag(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await write_outbox_rows(engine, 7)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE outbox SET created_at = now() - interval '90 seconds'"))
    body = (await api.get("/metrics")).text
    assert "vortex_outbox_backlog 7.0" in body
    lag = next(line for line in body.splitlines() if line.startswith("vortex_relay_lag_seconds "))
    assert float(lag.split()[1]) >= 90
