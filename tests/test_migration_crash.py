# ruff: noqa: F811 - pytest fixtures imported from tests.migration_support are parameter names
"""The worker process is SIGKILLed in the middle of the accounts backfill and started again:
every account is migrated once, every opening balance booked once, the ledger verifies."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory
from core.settings import Settings
from models.migration.tables import MigrationDomain
from tests.conftest import TEST_SECRET, RunningWorkers
from tests.migration_support import (  # noqa: F401 - fixtures
    caught_up,
    legacy_balances,
    legacy_url,
    migrate,
    new_balances,
    scalar,
    seeded,
    settings,
    start,
    wait_for,
)
from workflows.migration import MigrationWorkflow

REPO = Path(__file__).resolve().parent.parent
WorkerProcess = Callable[[], Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def worker_process(settings: Settings, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    """Starts `vortex worker` subprocesses on this test's queues and monolith; all killed at
    the end. Their output goes to tmp_path/worker-<n>.log."""
    procs: list[asyncio.subprocess.Process] = []
    env = os.environ | {
        "VORTEX_ENVIRONMENT": settings.environment,
        "VORTEX_DATABASE_URL": str(settings.database_url),
        "VORTEX_REDIS_URL": str(settings.redis_url),
        "VORTEX_TEMPORAL_ADDRESS": str(settings.temporal_address),
        "VORTEX_TASK_QUEUE": settings.task_queue,
        "VORTEX_EXTERNAL_TASK_QUEUE": settings.external_task_queue,
        "VORTEX_SECRET_KEY": TEST_SECRET,
        "VORTEX_EMAIL_BACKEND": settings.email_backend,
        "VORTEX_LEGACY_DATABASE_URL": str(settings.legacy_database_url),
        "VORTEX_LOG_LEVEL": "WARNING",
    }

    async def begin() -> asyncio.subprocess.Process:
        with (tmp_path / f"worker-{len(procs)}.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli.main", "worker", "--no-relay",
                env=env, cwd=REPO, stdout=log, stderr=log,
            )  # fmt: skip
        procs.append(proc)
        return proc

    yield begin
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_worker_killed_mid_backfill_leaves_nothing_duplicated_or_lost(
    workers: RunningWorkers,
    worker_process: WorkerProcess,
    temporal_client: Client,
    settings: Settings,
    sessions: SessionFactory,
    legacy_url: str,
) -> None:
    seed = await seeded(legacy_url, 12)
    _, users = await migrate(temporal_client, settings, MigrationDomain.USERS)
    assert users.cut_over
    await asyncio.gather(*(w.shutdown() for w in workers.workers))  # from now on: subprocesses
    first = await worker_process()
    handle = await start(
        temporal_client,
        settings,
        MigrationDomain.ACCOUNTS,
        batch_size=3,
        rows_per_second=6.0,
        activity_timeout_seconds=3.0,
    )
    midway = await wait_for(handle, lambda p: p.backfilled >= 3)
    first.kill()
    await first.wait()
    assert midway.backfilled < seed.accounts  # killed with accounts left to import
    await worker_process()
    done = await caught_up(handle)
    assert done.backfilled == seed.accounts
    result = await handle.execute_update(MigrationWorkflow.cutover)
    assert result.cut_over, result

    assert await new_balances(sessions) == await legacy_balances(legacy_url)
    openings = await scalar(
        sessions,
        "SELECT count(*) FROM journal_entries WHERE idempotency_key LIKE :p",
        p="%:opening",
    )
    assert openings == seed.accounts
    assert await scalar(
        sessions, "SELECT count(*) FROM ledger_accounts WHERE kind = 'customer'"
    ) == (seed.accounts)
    assert (await verify_ledger(sessions)).ok
