"""End-to-end internal transfers vs a bare Temporal workflow of two no-op activities.

transfer path: HTTP POST /api/payments/transfer to `vortex api` (own process) -> TransferWorkflow
check activity, ledger posting + payment completion activity) -> answer once the workflow is
done, i.e. the ledger is posted. baseline: `client.execute_workflow` of a workflow with two no-op
activities (the shape of Temporal's money-transfer sample). Both run on the same Temporal dev
server, worker process and machine, in the same run, with the same number in flight; rounds
alternate so background load hits both alike. Prints throughput, the ratio and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil
from temporalio.client import Client
from temporalio.worker import Worker

from activities.ledger import fund_account, open_account
from activities.ledger.verify import verify_ledger
from api.services import Services
from bench.bare_workflow import (
    BareLocalTransferWorkflow,
    BareTransferWorkflow,
    noop_deposit,
    noop_withdraw,
)
from bench.stack import (
    Stores,
    add_database_argument,
    api_process,
    bench_settings,
    bench_stores,
    temporal_dev_server,
)
from core.db import create_engine, create_session_factory, transaction
from core.email import MemoryEmailBackend
from core.embedded import free_port
from models.identity.tables import User, UserStatus
from models.ledger.payloads import FundAccountInput, OpenAccountInput
from models.ledger.tables import AccountType
from workers.assembly import WORKFLOW_RUNNER, WorkerDeps, build_workers

Op = Callable[[int], Awaitable[None]]
TRANSFER = "transfer (HTTP -> workflow -> ledger)"
BARE = "bare workflow, 2 no-op activities"
BARE_LOCAL = "bare workflow, 2 no-op local acts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench transfers`."""
    parser.add_argument("--count", type=int, default=200, help="operations per round and path")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per path")
    parser.add_argument("--in-flight", type=int, default=32, help="concurrent operations")
    add_database_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the end-to-end transfer benchmark; exit code 1 if the ledger check fails."""
    return asyncio.run(_main(args))


@dataclass
class Samples:
    """Latencies (seconds) and wall time of one path over all rounds."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group

    @property
    def rate(self) -> float:
        """Operations per second."""
        return len(self.latencies) / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        """The q-quantile latency in milliseconds."""
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[round(q * 100) - 1] * 1000


async def _measure(op: Op, count: int, in_flight: int, into: Samples) -> None:
    sem = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with sem:
            started = time.perf_counter()
            await op(n)
            into.latencies.append(time.perf_counter() - started)

    before = _cpu_by_group()
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    into.wall += time.perf_counter() - started
    for group, seconds in _cpu_by_group().items():
        into.cpu[group] = into.cpu.get(group, 0.0) + seconds - before.get(group, 0.0)


def _cpu_by_group() -> dict[str, float]:
    """CPU seconds so far of the processes the paths use, grouped (on a CPU-bound machine the
    throughput ratio is roughly the inverse ratio of these per operation)."""
    totals: dict[str, float] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "start-dev" in cmd:
            group = "temporal server"
        elif "cli.main api" in cmd:
            group = "api process"
        elif proc.pid == os.getpid():
            group = "worker + client"
        elif proc.info["name"] == "postgres":
            group = "postgres"
        else:
            continue
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            totals[group] = totals.get(group, 0.0) + times.user + times.system
    return totals


async def _main(args: argparse.Namespace) -> int:
    async with bench_stores(args.database_url) as stores, temporal_dev_server() as env:
        return await _bench(args, stores, env.client)


async def _bench(args: argparse.Namespace, stores: Stores, client: Client) -> int:
    settings = bench_settings(stores, client.service_client.config.target_host)
    services = await Services.connect(settings, temporal=client)
    engine = create_engine(stores.database_url, pool_size=20)
    sessions = create_session_factory(engine)
    deps = WorkerDeps(settings=settings, sessions=sessions, email=MemoryEmailBackend())
    workers = build_workers(client, deps)
    bare_queue = f"bench-bare-{uuid.uuid4().hex[:6]}"
    bare = Worker(
        client,
        task_queue=bare_queue,
        workflows=[BareTransferWorkflow, BareLocalTransferWorkflow],
        activities=[noop_withdraw, noop_deposit],
        workflow_runner=WORKFLOW_RUNNER,  # the same worker setup as ours: only the work differs
    )
    api_port = free_port()
    try:
        async with api_process(settings, api_port), workers[0], workers[1], bare:
            token, source, dest = await _customers(services)
            base_url = f"http://127.0.0.1:{api_port}"
            # aiohttp, not httpx: the load generator shares the two cores with the platform, and
            # httpx's client spends several ms of CPU per request (~a quarter of this process).
            async with aiohttp.ClientSession(
                base_url, timeout=aiohttp.ClientTimeout(total=120)
            ) as http:
                transfer_op = _transfer_op(http, token, source, dest)
                ops = {
                    TRANSFER: transfer_op,
                    BARE: _bare_op(client, bare_queue, BareTransferWorkflow.run),
                    BARE_LOCAL: _bare_op(client, bare_queue, BareLocalTransferWorkflow.run),
                }
                for op in ops.values():  # warm-up
                    await _measure(op, 20, args.in_flight, Samples())
                results = {name: Samples() for name in ops}
                for _ in range(args.rounds):
                    for name, op in ops.items():
                        await _measure(op, args.count, args.in_flight, results[name])
        report = await verify_ledger(sessions)
    finally:
        await services.close()
        await engine.dispose()
    _print(results, args)
    print(f"ledger verify after the run: {'OK' if report.ok else 'FAILED'}")
    return 0 if report.ok else 1


def _transfer_op(http: aiohttp.ClientSession, token: str, source: str, dest: str) -> Op:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"from_account_id": source, "to_account_id": dest, "amount": "0.01", "currency": "EUR"}

    async def op(n: int) -> None:
        key = str(uuid.uuid4())
        for attempt in range(3):  # a dropped keep-alive connection: retry with the same key
            try:
                async with http.post(
                    "/api/payments/transfer",
                    headers=headers | {"Idempotency-Key": key},
                    json=body,
                ) as response:
                    answer = await response.json()
                    break
            except aiohttp.ClientConnectionError:
                if attempt == 2:
                    raise
        if response.status not in (200, 201) or answer.get("status") != "completed":
            raise RuntimeError(f"transfer did not complete: {response.status} {answer}")

    return op


def _bare_op(client: Client, queue: str, run: Callable[[Any, int], Awaitable[None]]) -> Op:
    async def op(n: int) -> None:
        await client.execute_workflow(run, 1, id=f"bare-{uuid.uuid4()}", task_queue=queue)

    return op


async def _customers(services: Services) -> tuple[str, str, str]:
    """One active user with two funded EUR accounts, and an access token (no registration)."""
    user_id = uuid.uuid4()
    async with transaction(services.sessions) as session:
        session.add(
            User(
                id=user_id,
                email=f"bench-{user_id}@example.com",
                first_name="B",
                last_name="B",
                password_hash="!",  # noqa: S106 - no password: the benchmark mints a token
                status=UserStatus.ACTIVE,
                mfa_enabled=True,
            )
        )
        await session.flush()
        ids = []
        for n in range(2):
            opened = await open_account(
                session,
                OpenAccountInput(
                    idempotency_key=f"bench-{user_id}-{n}",
                    owner_user_id=user_id,
                    currency="EUR",
                    type=AccountType.CHECKING,
                    name=f"bench {n}",
                ),
            )
            ids.append(opened.account_id)
        await fund_account(
            session,
            FundAccountInput(
                idempotency_key=f"bench-fund-{user_id}",
                account_id=ids[0],
                amount=10**12,
                currency="EUR",
            ),
        )
    token, _ = services.tokens.issue(user_id, "access", 3600, sid=str(uuid.uuid4()))
    return token, str(ids[0]), str(ids[1])


def _print(results: dict[str, Samples], args: argparse.Namespace) -> None:
    print(
        f"\nend-to-end transfers vs bare workflows ({args.rounds} rounds x {args.count} ops, "
        f"{args.in_flight} in flight, same Temporal dev server and machine)"
    )
    print(f"{'path':<40} {'ops/s':>8} {'vs local':>9} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8}")
    local, bare = results[BARE_LOCAL].rate, results[BARE].rate
    for name, s in results.items():
        print(
            f"{name:<40} {s.rate:>8.1f} {s.rate / local:>9.2f} {s.rate / bare:>8.2f} "
            f"{s.pct(0.5):>8.1f} {s.pct(0.99):>8.1f}"
        )
    groups = sorted({g for s in results.values() for g in s.cpu})
    print("CPU ms per operation: " + ", ".join(groups))
    for name, s in results.items():
        per_op = [1000 * s.cpu.get(g, 0.0) / max(len(s.latencies), 1) for g in groups]
        print(
            f"  {name:<38} "
            + "  ".join(f"{v:6.1f}" for v in per_op)
            + f"  total {sum(per_op):6.1f}"
        )
    for label, base in (("local-activity", local), ("regular-activity", bare)):
        ratio = results[TRANSFER].rate / base
        verdict = "met" if ratio >= 0.8 else "NOT met"
        print(f"target: transfer >= 0.80 x bare {label} workflow -> {verdict} ({ratio:.2f})")
