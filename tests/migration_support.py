"""Fixtures and helpers of the migration tests: a monolith database per test (on the test
PostgreSQL server), its API served by uvicorn, and helpers to drive `MigrationWorkflow`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from activities.migration.control import migration_input
from api.app import create_app
from api.services import Services
from core.db import SessionFactory
from core.settings import Settings
from gateway.app import Gateway
from legacysim.app import create_legacy_app
from legacysim.schema import create_schema, drop_database, ensure_database
from legacysim.seed import SeedResult, seed
from models.migration.payloads import CutoverResult, MigrationProgress
from models.migration.tables import MigrationDomain, MigrationStage
from railsim.server import serve_app
from temporal.ids import migration_workflow_id
from workflows.migration import MigrationWorkflow

MigrationHandle = WorkflowHandle[MigrationWorkflow, MigrationProgress]


@pytest.fixture
async def legacy_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh monolith database for this test (dropped afterwards)."""
    name = f"vortex_legacy_{uuid.uuid4().hex[:10]}"
    url = make_url(postgres_server_url).set(database=name).render_as_string(False)
    await ensure_database(url)
    await create_schema(url)
    yield url
    await drop_database(url)


@pytest.fixture
def settings(base_settings: Settings, legacy_url: str) -> Settings:
    """This test's queues, its monolith, and small migration batches (continue-as-new every
    few batches, short CDC polls)."""
    suffix = uuid.uuid4().hex[:8]
    return base_settings.model_copy(
        update={
            "task_queue": f"main-{suffix}",
            "external_task_queue": f"external-{suffix}",
            "legacy_database_url": legacy_url,
            "migration_batch_size": 20,
            "migration_rows_per_second": 2000.0,
            "migration_cdc_poll_seconds": 0.2,
            "migration_batches_per_run": 3,
            "migration_sample_size": 5,
        }
    )


@pytest.fixture
async def legacy_http(legacy_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the monolith's API, served for this test."""
    async with (
        serve_app(create_legacy_app(legacy_url)) as served,
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        yield client


async def seeded(legacy_url: str, users: int, *, invalid: bool = False) -> SeedResult:
    """Seed the monolith cheaply (bcrypt cost 4, short histories)."""
    return await seed(legacy_url, users=users, invalid=invalid, rounds=4, history=3)


async def start(
    client: Client, settings: Settings, domain: MigrationDomain, **overrides: Any
) -> MigrationHandle:
    """Start a domain's workflow on this test's queue."""
    inp = migration_input(settings, domain).model_copy(update=overrides)
    return await client.start_workflow(
        MigrationWorkflow.run,
        inp,
        id=f"{migration_workflow_id(domain.value)}-{uuid.uuid4().hex[:6]}",
        task_queue=settings.task_queue,
    )


async def wait_for(
    handle: MigrationHandle,
    check: Callable[[MigrationProgress], bool],
    within: float = 60.0,
) -> MigrationProgress:
    """Poll the `progress` query until `check` holds.

    A query that fails on the way (the server still routes it to the sticky queue of a worker
    that was just killed, and answers `context canceled`) is asked again until the deadline."""
    deadline = asyncio.get_running_loop().time() + within
    progress: MigrationProgress | RPCError | None = None
    while True:
        try:
            progress = await asyncio.wait_for(handle.query(MigrationWorkflow.progress), 30)
        except RPCError as err:
            progress = err
        else:
            if check(progress):
                return progress
        assert asyncio.get_running_loop().time() < deadline, f"still {progress!r}"
        await asyncio.sleep(0.1)


async def caught_up(handle: MigrationHandle) -> MigrationProgress:
    """Wait until the backfill is done and change-data-capture runs."""
    return await wait_for(handle, lambda p: p.stage == MigrationStage.CATCHING_UP)


async def migrate(
    client: Client, settings: Settings, domain: MigrationDomain
) -> tuple[MigrationHandle, CutoverResult]:
    """Start, catch up and cut over a domain; returns the handle and the cutover's answer."""
    handle = await start(client, settings, domain)
    await caught_up(handle)
    result = await asyncio.wait_for(handle.execute_update(MigrationWorkflow.cutover), 60)
    return handle, result


async def scalar(sessions: SessionFactory, sql: str, **params: Any) -> Any:
    """One value from our database."""
    async with sessions() as session:
        return await session.scalar(text(sql), params)


async def legacy_scalar(legacy_url: str, sql: str, *args: Any) -> Any:
    """One value from the monolith's database."""
    import asyncpg

    from legacysim.schema import legacy_dsn

    conn = await asyncpg.connect(legacy_dsn(legacy_url))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def legacy_balances(legacy_url: str) -> dict[int, int]:
    """Every legacy account's balance in minor units (two-decimal currencies only)."""
    import asyncpg

    from legacysim.schema import legacy_dsn

    conn = await asyncpg.connect(legacy_dsn(legacy_url))
    try:
        rows = await conn.fetch("SELECT id, balance FROM accounts")
    finally:
        await conn.close()
    return {int(r["id"]): int(r["balance"] * 100) for r in rows}


async def new_balances(sessions: SessionFactory) -> dict[int, int]:
    """Each migrated account's posted balance, by legacy id."""
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT m.legacy_id, a.posted FROM migration_identities m "
                "JOIN ledger_accounts a ON a.id = m.new_id WHERE m.domain = 'accounts'"
            )
        )
        return {int(r.legacy_id): int(r.posted) for r in rows}


@contextlib.asynccontextmanager
async def gateway_in_front(services: Services, legacy_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the strangler-fig gateway in front of the monolith (served at `legacy_url`)
    and the new API (served here over HTTP), routed by this test's `gateway_routes`."""
    async with serve_app(create_app(services.settings, services)) as new_side:
        routed = services.settings.model_copy(
            update={"gateway_legacy_url": legacy_url, "gateway_new_url": new_side.url}
        )
        async with (
            Gateway(routed).running() as gateway,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://bank", timeout=30
            ) as client,
        ):
            yield client
