"""Crash test: the worker process is killed (SIGKILL) while transfers are in flight and then
restarted; every transfer completes exactly once and the ledger invariants hold."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.ledger.tables import JournalEntry
from models.payments.tables import Payment, PaymentStatus
from tests.conftest import TEST_SECRET, RunningWorkers
from tests.flows import fund, register_customer

TRANSFERS = 24


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Answer 202 at once and retry a dead worker's activities after 2 s, not 30 s."""
    return settings.model_copy(
        update={"payment_sync_wait_seconds": 0.0, "db_activity_timeout_seconds": 2.0}
    )


@pytest.fixture
async def worker_process(settings: Settings) -> AsyncIterator[Callable[[], asyncio.Task[None]]]:
    """Starts `vortex worker` subprocesses on this test's task queues; all killed at the end."""
    procs: list[asyncio.subprocess.Process] = []
    env = os.environ | {
        "VORTEX_DATABASE_URL": str(settings.database_url),
        "VORTEX_REDIS_URL": str(settings.redis_url),
        "VORTEX_TEMPORAL_ADDRESS": str(settings.temporal_address),
        "VORTEX_TASK_QUEUE": settings.task_queue,
        "VORTEX_EXTERNAL_TASK_QUEUE": settings.external_task_queue,
        "VORTEX_SECRET_KEY": TEST_SECRET,
        "VORTEX_LOG_LEVEL": "WARNING",
    }

    def start() -> asyncio.Task[None]:
        async def spawn() -> None:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "cli.main",
                    "worker",
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )

        return asyncio.create_task(spawn())

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _count(sessions: SessionFactory, status: PaymentStatus | None = None) -> int:
    query = select(func.count()).select_from(Payment)
    if status is not None:
        query = query.where(col(Payment.status) == status)
    async with sessions() as session:
        return int(await session.scalar(query) or 0)


async def test_killed_worker_mid_transfers_every_transfer_completes_exactly_once(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    workers: RunningWorkers,
    sessions: SessionFactory,
    worker_process: Callable[[], asyncio.Task[None]],
) -> None:
    alice = await register_customer(api, outbox, "alice@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    source = (await api.get("/api/accounts", headers=alice.auth)).json()["items"][0]
    dest = (await api.get("/api/accounts", headers=bob.auth)).json()["items"][0]
    await fund(sessions, source["id"], 100_000, "EUR")
    await asyncio.gather(*(w.shutdown() for w in workers.workers))  # from now on: subprocesses
    await worker_process()

    async def send(n: int) -> httpx.Response:
        return await api.post(
            "/api/payments/transfer",
            headers=alice.auth | {"Idempotency-Key": f"crash-{n}"},
            json={
                "from_account_id": source["id"],
                "to_account_number": dest["number"],
                "amount": "10.00",
                "currency": "EUR",
            },
        )

    accepted = await asyncio.gather(*(send(n) for n in range(TRANSFERS)))
    assert {r.status_code for r in accepted} <= {201, 202}
    for _ in range(600):  # kill the worker once some, but not all, transfers are done
        done = await _count(sessions, PaymentStatus.COMPLETED)
        if done >= 3:
            break
        await asyncio.sleep(0.02)
    os.kill(await _first_worker_pid(), signal.SIGKILL)
    killed_at = await _count(sessions, PaymentStatus.COMPLETED)
    await worker_process()
    retried = await asyncio.gather(*(send(n) for n in range(TRANSFERS)))  # client retries too
    for _ in range(900):
        if await _count(sessions, PaymentStatus.COMPLETED) == TRANSFERS:
            break
        await asyncio.sleep(0.1)

    assert killed_at < TRANSFERS, "the kill came too late to test anything"
    assert await _count(sessions) == TRANSFERS
    assert await _count(sessions, PaymentStatus.COMPLETED) == TRANSFERS
    assert {r.json()["id"] for r in retried} == {r.json()["id"] for r in accepted}
    async with sessions() as session:
        entries = await session.scalar(
            select(func.count())
            .select_from(JournalEntry)
            .where(col(JournalEntry.kind) == "transfer")
        )
    assert entries == TRANSFERS
    balance = (await api.get(f"/api/accounts/{source['id']}/balance", headers=alice.auth)).json()
    assert balance["posted"]["amount_minor"] == 100_000 - TRANSFERS * 1_000
    report = await verify_ledger(sessions)
    assert report.ok, report


async def _first_worker_pid() -> int:
    """The pid of the oldest running `cli.main worker` child of this test process."""
    proc = await asyncio.create_subprocess_exec(
        "pgrep",
        "-o",
        "-P",
        str(os.getpid()),
        "-f",
        "cli.main worker",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return int(out.split()[0])
