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
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import psutil
from sqlalchemy import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import fund_account, open_account
from activities.ledger.verify import verify_ledger
from api.services import Services
from bench.bare_workflow import BareTransferWorkflow, noop_deposit, noop_withdraw
from core.db import create_engine, create_session_factory, transaction
from core.email import MemoryEmailBackend
from core.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, venv_binary, wait_for_port
from core.settings import Settings
from models.identity.tables import User, UserStatus
from models.ledger.payloads import FundAccountInput, OpenAccountInput
from models.ledger.tables import AccountType
from models.migrate import upgrade_to_head_async
from temporal import search_attributes
from workers.assembly import WORKFLOW_RUNNER, WorkerDeps, build_workers

Op = Callable[[int], Awaitable[None]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench transfers`."""
    parser.add_argument("--count", type=int, default=200, help="operations per round and path")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per path")
    parser.add_argument("--in-flight", type=int, default=32, help="concurrent operations")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VORTEX_BENCH_DATABASE_URL"),
        help="PostgreSQL server (default: VORTEX_BENCH_DATABASE_URL, else embedded)",
    )


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
    tmp = Path(tempfile.mkdtemp(prefix="vortex-bench-"))
    os.chmod(tmp, 0o755)  # noqa: S103 - the embedded postgres system user must traverse it
    embedded: EmbeddedPostgres | None = None
    redis = EmbeddedRedis(tmp / "redis", free_port())
    server_url = args.database_url
    try:
        if not server_url:
            embedded = EmbeddedPostgres(tmp / "pg", free_port(), database="postgres", fsync=False)
            await asyncio.to_thread(embedded.start)
            server_url = embedded.url
        await asyncio.to_thread(redis.start)
        name = f"vortex_bench_{uuid.uuid4().hex[:10]}"
        admin_url = make_url(server_url).set(drivername="postgresql")
        admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
            try:
                return await _bench(args, url, redis.url)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    finally:
        redis.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        shutil.rmtree(tmp, ignore_errors=True)


async def _bench(args: argparse.Namespace, url: str, redis_url: str) -> int:
    await upgrade_to_head_async(url)
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_existing_path=venv_binary("temporal"),
        dev_server_log_level="error",
    )
    client = env.client
    settings = Settings(
        _env_file=None,
        database_url=url,
        redis_url=redis_url,
        temporal_address=client.service_client.config.target_host,
        payment_sync_wait_seconds=60.0,  # the HTTP answer comes when the ledger is posted
        max_payments_per_hour=10**9,  # the risk rule's velocity limit would stop the benchmark
        task_queue=f"bench-{uuid.uuid4().hex[:6]}",
        external_task_queue=f"bench-ext-{uuid.uuid4().hex[:6]}",
    )
    services = await Services.connect(settings, temporal=client)
    engine = create_engine(url, pool_size=20)
    sessions = create_session_factory(engine)
    deps = WorkerDeps(settings=settings, sessions=sessions, email=MemoryEmailBackend())
    workers = build_workers(client, deps)
    bare_queue = f"bench-bare-{uuid.uuid4().hex[:6]}"
    bare = Worker(
        client,
        task_queue=bare_queue,
        workflows=[BareTransferWorkflow],
        activities=[noop_withdraw, noop_deposit],
        workflow_runner=WORKFLOW_RUNNER,  # the same worker setup as ours: only the work differs
    )
    api_port = free_port()
    api_process = await _start_api(settings, api_port)
    try:
        async with workers[0], workers[1], bare:
            token, source, dest = await _customers(services)
            base_url = f"http://127.0.0.1:{api_port}"
            # aiohttp, not httpx: the load generator shares the two cores with the platform, and
            # httpx's client spends several ms of CPU per request (~a quarter of this process).
            async with aiohttp.ClientSession(
                base_url, timeout=aiohttp.ClientTimeout(total=120)
            ) as http:
                transfer_op = _transfer_op(http, token, source, dest)
                bare_op = _bare_op(client, bare_queue)
                await _measure(transfer_op, 20, args.in_flight, Samples())  # warm-up
                await _measure(bare_op, 20, args.in_flight, Samples())
                results = {
                    "transfer (HTTP -> workflow -> ledger)": Samples(),
                    "bare workflow, 2 no-op activities": Samples(),
                }
                for _ in range(args.rounds):
                    for (_, samples), op in zip(
                        results.items(), (transfer_op, bare_op), strict=True
                    ):
                        await _measure(op, args.count, args.in_flight, samples)
        report = await verify_ledger(sessions)
    finally:
        api_process.terminate()
        await api_process.wait()
        await services.close()
        await engine.dispose()
        await env.shutdown()
    _print(results, args)
    print(f"ledger verify after the run: {'OK' if report.ok else 'FAILED'}")
    return 0 if report.ok else 1


async def _start_api(settings: Settings, port: int) -> asyncio.subprocess.Process:
    """`vortex api` in its own process, as in production: its CPU is not the worker's."""
    env = os.environ | {
        "VORTEX_DATABASE_URL": str(settings.database_url),
        "VORTEX_REDIS_URL": str(settings.redis_url),
        "VORTEX_TEMPORAL_ADDRESS": str(settings.temporal_address),
        "VORTEX_TASK_QUEUE": settings.task_queue,
        "VORTEX_EXTERNAL_TASK_QUEUE": settings.external_task_queue,
        "VORTEX_API_PORT": str(port),
        "VORTEX_PAYMENT_SYNC_WAIT_SECONDS": "60",
        "VORTEX_MAX_PAYMENTS_PER_HOUR": str(10**9),
        "VORTEX_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "api", env=env, stdin=asyncio.subprocess.DEVNULL
    )
    await asyncio.to_thread(wait_for_port, port, 60.0)
    return process


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


def _bare_op(client: Client, queue: str) -> Op:
    async def op(n: int) -> None:
        await client.execute_workflow(
            BareTransferWorkflow.run, 1, id=f"bare-{uuid.uuid4()}", task_queue=queue
        )

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
    rows = list(results.items())
    base = rows[1][1].rate
    print(
        f"\nend-to-end transfers vs bare workflow ({args.rounds} rounds x {args.count} ops, "
        f"{args.in_flight} in flight, same Temporal dev server and machine)"
    )
    print(f"{'path':<40} {'ops/s':>8} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, s in rows:
        print(
            f"{name:<40} {s.rate:>8.1f} {s.rate / base:>8.2f} {s.pct(0.5):>8.1f} "
            f"{s.pct(0.99):>8.1f}"
        )
    groups = sorted({g for _, s in rows for g in s.cpu})
    print("CPU ms per operation: " + ", ".join(groups))
    for name, s in rows:
        per_op = [1000 * s.cpu.get(g, 0.0) / max(len(s.latencies), 1) for g in groups]
        print(
            f"  {name:<38} "
            + "  ".join(f"{v:6.1f}" for v in per_op)
            + f"  total {sum(per_op):6.1f}"
        )
    ratio = rows[0][1].rate / base
    print(
        f"target: transfer >= 0.80 x bare -> {'met' if ratio >= 0.8 else 'NOT met'} ({ratio:.2f})"
    )
