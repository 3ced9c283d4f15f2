"""Events, live part: ledger commit -> frame on a socket, with many sockets connected and
transfers flowing; memory per idle socket.

Stack: `vortex api` in its own process (the /ws hub), the workers and the outbox relay in this
process, a Temporal dev server, the benchmark's PostgreSQL and Redis. Customers are seeded
directly and get minted tokens; each transfer goes through HTTP and TransferWorkflow, so every
`balance.updated` frame comes from a real ledger posting. Latency is the frame's receipt minus
its `ts` (the ledger's timestamp, taken just before its transaction commits: a slight
overestimate of commit -> frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import psutil
import websockets
from websockets.asyncio.client import ClientConnection

from activities.events.relay import OutboxRelay, RelayConfig
from api.services import Services
from bench.seed import BenchCustomer, bench_customer
from bench.stack import Stores, api_process, bench_converter, bench_settings, temporal_dev_server
from core.db import asyncpg_dsn, create_engine, create_session_factory
from core.email import MemoryEmailBackend
from core.embedded import free_port
from core.redis import create_redis
from workers.assembly import WorkerDeps, build_workers


@dataclass
class Received:
    """Latencies (seconds) of `balance.updated` frames, by phase."""

    latencies: list[float] = field(default_factory=list)
    frames: int = 0


async def _open(url: str, customer: BenchCustomer) -> ClientConnection:
    """An authenticated socket on the customer's user channel, once the server said `ready`."""
    ws = await websockets.connect(url, max_size=2**20, ping_interval=None)
    await ws.send(json.dumps({"type": "auth", "token": customer.token}))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "ready":
            return ws
        if frame["type"] == "error":
            raise RuntimeError(f"socket refused: {frame}")


async def _listen(ws: ClientConnection, into: Received, stop: asyncio.Event) -> None:
    """Record every `balance.updated` frame's latency; answer pings."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif frame["type"] == "balance.updated" and not stop.is_set():
                sent = datetime.fromisoformat(frame["ts"]).timestamp()
                into.latencies.append(time.time() - sent)
                into.frames += 1


async def _transfers(
    http: aiohttp.ClientSession, customers: list[BenchCustomer], seconds: float, in_flight: int
) -> int:
    """Transfers from customer i to customer i+1 for `seconds`; how many completed."""
    done = 0
    deadline = time.monotonic() + seconds

    async def lane(n: int) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            payer = customers[(n + done) % len(customers)]
            payee = customers[(n + done + 1) % len(customers)]
            body = {
                "from_account_id": payer.source,
                "to_account_number": payee.dest_number,
                "amount": "0.01",
                "currency": "EUR",
            }
            headers = {
                "Authorization": f"Bearer {payer.token}",
                "Idempotency-Key": str(uuid.uuid4()),
            }
            async with http.post("/api/payments/transfer", headers=headers, json=body) as answer:
                if answer.status in (200, 201):
                    done += 1

    await asyncio.gather(*(lane(n) for n in range(in_flight)))
    return done


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def run_live(stores: Stores, sockets: int, idle: int, seconds: float, in_flight: int) -> None:
    """Measure commit -> frame latency and memory per idle socket; print the figures."""
    port = free_port()
    async with temporal_dev_server(bench_converter()) as env:
        address = env.client.service_client.config.target_host
        settings = bench_settings(stores, address, ws_max_connections_per_user=50)
        services = await Services.connect(settings, temporal=env.client)
        engine = create_engine(stores.database_url, pool_size=20)
        redis = create_redis(stores.redis_url)
        stop = asyncio.Event()
        try:
            customers = [await bench_customer(services) for _ in range(max(sockets, 2))]
            relay = OutboxRelay(asyncpg_dsn(stores.database_url), redis, RelayConfig())
            deps = WorkerDeps(
                settings=settings,
                sessions=create_session_factory(engine),
                email=MemoryEmailBackend(),
            )
            async with contextlib.AsyncExitStack() as running:
                for worker in build_workers(env.client, deps):
                    await running.enter_async_context(worker)
                relaying = asyncio.create_task(relay.run(stop))
                extra = {"VORTEX_WS_MAX_CONNECTIONS_PER_USER": "50"}
                api = await running.enter_async_context(api_process(settings, port, extra))
                http = await running.enter_async_context(
                    aiohttp.ClientSession(
                        f"http://127.0.0.1:{port}", timeout=aiohttp.ClientTimeout(total=120)
                    )
                )
                url = f"ws://127.0.0.1:{port}/ws"
                await _transfers(http, customers, 3.0, 4)  # warm-up
                base_rss = _rss_mb(api.pid)
                conns = [await _open(url, customers[i]) for i in range(sockets)]
                received = Received()
                quiet = asyncio.Event()
                listeners = [asyncio.create_task(_listen(ws, received, quiet)) for ws in conns]
                completed = await _transfers(http, customers, seconds, in_flight)
                await asyncio.sleep(1.0)  # the last frames
                quiet.set()
                for ws in conns:
                    await ws.close()
                await asyncio.gather(*listeners, return_exceptions=True)
                await asyncio.sleep(1.0)
                before_idle = _rss_mb(api.pid)
                owners = [customers[i % len(customers)] for i in range(idle)]
                idle_conns = [await _open(url, owner) for owner in owners]
                await asyncio.sleep(2.0)
                after_idle = _rss_mb(api.pid)
                for ws in idle_conns:
                    await ws.close()
                stop.set()
                await relaying
            _print_live(
                received, completed, seconds, sockets, idle, base_rss, before_idle, after_idle
            )
        finally:
            stop.set()
            await services.close()
            await redis.aclose()
            await engine.dispose()


def _print_live(
    received: Received,
    completed: int,
    seconds: float,
    sockets: int,
    idle: int,
    base_rss: float,
    before_idle: float,
    after_idle: float,
) -> None:
    latencies = sorted(received.latencies)
    print(f"\nlive events, {sockets} sockets, transfers for {seconds:.0f} s")
    print(f"  transfers completed: {completed} ({completed / seconds:.1f}/s)")
    print(f"  balance.updated frames received: {received.frames}")
    if latencies:
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        print(f"  ledger commit -> frame: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    per_socket_kib = (after_idle - before_idle) * 1024 / idle if idle else 0.0
    print(
        f"  API RSS: {base_rss:.1f} MiB at start, {before_idle:.1f} MiB before {idle} idle "
        f"sockets, {after_idle:.1f} MiB with them: {per_socket_kib:.1f} KiB per idle socket"
    )
