"""Events: outbox relay throughput against a bare XADD loop of the same payloads; live
commit -> frame latency with many sockets and memory per idle socket (bench/events_ws.py).

relay: `OutboxRelay.publish_batch` until the backlog is empty (read unpublished rows in id
order, XADD them in one pipeline per batch, mark them published): the relay's whole hot path
minus the NOTIFY wait. baseline (the issue's): the same entries XADDed by a bare loop, one
awaited XADD each; a second, harder baseline pipelines the same entries in batches of the
relay's size with no database at all. Rounds alternate; each starts from the same backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis

from activities.events.relay import OutboxRelay, RelayConfig
from activities.events.streams import STREAMS, entry_fields
from bench.events_ws import run_live
from bench.stack import Stores, add_database_argument, bench_stores
from core.db import asyncpg_dsn
from core.redis import create_redis

RELAY = "relay (PG read + XADD pipeline + mark)"
BARE_LOOP = "bare XADD loop (baseline)"
BARE_PIPELINE = "bare XADD pipeline, no DB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench events`."""
    parser.add_argument("--events", type=int, default=20_000, help="outbox rows per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per path")
    parser.add_argument("--batch-size", type=int, default=500, help="the relay's batch size")
    parser.add_argument("--sockets", type=int, default=200, help="sockets during the transfers")
    parser.add_argument("--idle-sockets", type=int, default=1000, help="for memory per socket")
    parser.add_argument("--seconds", type=float, default=20.0, help="transfer load duration")
    parser.add_argument("--in-flight", type=int, default=16, help="concurrent transfers")
    parser.add_argument(
        "--part", choices=("all", "relay", "live"), default="all", help="what to measure"
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the events benchmark."""
    return asyncio.run(_main(args))


def _payload(n: int, account: uuid.UUID, user: uuid.UUID) -> str:
    """A `balance.updated` payload of realistic size."""
    return json.dumps(
        {
            "account_id": str(account),
            "user_id": str(user),
            "currency": "EUR",
            "posted": 100_000 + n,
            "held": 0,
            "available": 100_000 + n,
            "status": "open",
            "as_of": datetime.now(UTC).isoformat(),
        }
    )


_SEED = """
INSERT INTO outbox (topic, type, aggregate_id, user_id, payload)
SELECT 'transaction.events', 'balance.updated', a, u, CAST(p AS jsonb)
FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS t(a, u, p)
"""


async def _seed(conn: asyncpg.Connection, count: int) -> list[dict[str, str]]:
    """Write `count` unpublished rows; return the entries the relay will make of them."""
    users = [uuid.uuid4() for _ in range(50)]
    accounts = [uuid.uuid4() for _ in range(50)]
    aggs = [accounts[i % 50] for i in range(count)]
    owners = [users[i % 50] for i in range(count)]
    payloads = [_payload(i, aggs[i], owners[i]) for i in range(count)]
    await conn.execute("TRUNCATE outbox RESTART IDENTITY")
    await conn.execute(_SEED, aggs, owners, payloads)
    rows = await conn.fetch(
        "SELECT id, type, aggregate_id::text, user_id::text, payload::text, created_at "
        "FROM outbox ORDER BY id"
    )
    return [entry_fields(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def _relay_round(conn: asyncpg.Connection, redis: Redis, batch: int) -> float:
    relay = OutboxRelay("", redis, RelayConfig(batch_size=batch))
    began = time.perf_counter()
    while await relay.publish_batch(conn):
        pass
    return time.perf_counter() - began


async def _loop_round(redis: Redis, entries: list[dict[str, str]]) -> float:
    began = time.perf_counter()
    for fields in entries:
        await redis.xadd("transaction.events", fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
    return time.perf_counter() - began


async def _pipeline_round(redis: Redis, entries: list[dict[str, str]], batch: int) -> float:
    began = time.perf_counter()
    for start in range(0, len(entries), batch):
        async with redis.pipeline(transaction=False) as pipe:
            for fields in entries[start : start + batch]:
                pipe.xadd("transaction.events", fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()
    return time.perf_counter() - began


async def _main(args: argparse.Namespace) -> int:
    async with bench_stores(args.database_url) as stores:
        if args.part in ("all", "relay"):
            await _relay_part(args, stores)
        if args.part in ("all", "live"):
            await run_live(stores, args.sockets, args.idle_sockets, args.seconds, args.in_flight)
    return 0


async def _relay_part(args: argparse.Namespace, stores: Stores) -> None:
    rates: dict[str, list[float]] = {RELAY: [], BARE_LOOP: [], BARE_PIPELINE: []}
    redis = create_redis(stores.redis_url)
    conn = await asyncpg.connect(asyncpg_dsn(stores.database_url))
    try:
        for round_no in range(1, args.rounds + 1):
            entries = await _seed(conn, args.events)
            await redis.delete(*STREAMS)
            relay_s = await _relay_round(conn, redis, args.batch_size)
            published = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
            )
            assert published == args.events, f"the relay published {published}"
            await redis.delete(*STREAMS)
            loop_s = await _loop_round(redis, entries)
            await redis.delete(*STREAMS)
            pipe_s = await _pipeline_round(redis, entries, args.batch_size)
            for name, seconds in (
                (RELAY, relay_s),
                (BARE_LOOP, loop_s),
                (BARE_PIPELINE, pipe_s),
            ):
                rates[name].append(args.events / seconds)
            print(
                f"round {round_no}: relay {args.events / relay_s:,.0f}/s, "
                f"bare loop {args.events / loop_s:,.0f}/s, "
                f"bare pipeline {args.events / pipe_s:,.0f}/s, "
                f"ratio vs loop {loop_s / relay_s:.2f}",
                flush=True,
            )
    finally:
        await conn.close()
        await redis.aclose()
    _report(rates, args)


def _report(rates: dict[str, list[float]], args: argparse.Namespace) -> None:
    shape = f"{args.events:,} events x {args.rounds} rounds, batch {args.batch_size}"
    print(f"\nrelay throughput, {shape}")
    for name, values in rates.items():
        print(f"  {name:42} {statistics.median(values):>10,.0f} events/s (median)")
    relay = statistics.median(rates[RELAY])
    print(
        f"  ratio relay / bare XADD loop:     {relay / statistics.median(rates[BARE_LOOP]):.2f}"
        "  (target >= 0.5)"
    )
    print(
        f"  ratio relay / bare XADD pipeline: {relay / statistics.median(rates[BARE_PIPELINE]):.2f}"
    )
