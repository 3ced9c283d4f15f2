"""What every benchmark stands on: a throwaway database on embedded (or given) PostgreSQL, an
embedded Redis, a Temporal dev server, and `vortex api` in its own process."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import make_url
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from core.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, venv_binary, wait_for_port
from core.settings import Settings
from models.migrate import upgrade_to_head_async
from temporal import search_attributes
from temporal.client import data_converter


@dataclass(frozen=True)
class Stores:
    """The URLs of the benchmark's own database and Redis."""

    database_url: str
    redis_url: str


@dataclass(frozen=True)
class ScratchDatabases:
    """Empty databases of one benchmark run, and the embedded server's postmaster pid (None
    when the server was given)."""

    urls: list[str]
    postmaster_pid: int | None


@asynccontextmanager
async def scratch_databases(
    server_url: str | None, *prefixes: str
) -> AsyncIterator[ScratchDatabases]:
    """One empty database per prefix (same random suffix), created on `server_url`, else on an
    embedded PostgreSQL started for the block; all dropped (and the server stopped) after."""
    tmp = Path(tempfile.mkdtemp(prefix="vortex-bench-"))
    os.chmod(tmp, 0o755)  # noqa: S103 - the embedded postgres system user must traverse it
    embedded: EmbeddedPostgres | None = None
    try:
        if not server_url:
            # Room for several stacks (API, relay and worker pools each) in one run.
            embedded = EmbeddedPostgres(
                tmp / "pg", free_port(), database="postgres", fsync=False, max_connections=400
            )
            await asyncio.to_thread(embedded.start)
            server_url = embedded.url
        suffix = uuid.uuid4().hex[:10]
        names = [f"{prefix}_{suffix}" for prefix in prefixes]
        admin_url = make_url(server_url).set(drivername="postgresql")
        admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
        try:
            for name in names:
                await admin.execute(f'CREATE DATABASE "{name}"')
            pid = None
            if embedded is not None:
                pid = int((embedded.data_dir / "postmaster.pid").read_text().split()[0])
            base = make_url(server_url)
            urls = [base.set(database=n).render_as_string(hide_password=False) for n in names]
            try:
                yield ScratchDatabases(urls, pid)
            finally:
                for name in names:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        shutil.rmtree(tmp, ignore_errors=True)


@asynccontextmanager
async def bench_stores(server_url: str | None) -> AsyncIterator[Stores]:
    """A migrated database of its own (created and dropped on `server_url`, else on an
    embedded PostgreSQL) and an embedded Redis, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="vortex-bench-"))
    redis = EmbeddedRedis(tmp / "redis", free_port())
    try:
        async with scratch_databases(server_url, "vortex_bench") as scratch:
            await asyncio.to_thread(redis.start)
            await upgrade_to_head_async(scratch.urls[0])
            yield Stores(scratch.urls[0], redis.url)
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@asynccontextmanager
async def temporal_dev_server(converter: DataConverter) -> AsyncIterator[WorkflowEnvironment]:
    """A local Temporal dev server with the project's search attributes; its client uses
    `converter` (temporal.client.data_converter of the benchmark's settings)."""
    env = await WorkflowEnvironment.start_local(
        data_converter=converter,
        search_attributes=search_attributes.ALL,
        dev_server_existing_path=venv_binary("temporal"),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


def bench_converter(**overrides: object) -> DataConverter:
    """The data converter of benchmark settings with these overrides (the same keys as
    `bench_settings` gives the workers and `vortex api`)."""
    return data_converter(Settings(_env_file=None, **overrides))  # type: ignore[arg-type]


def bench_settings(stores: Stores, temporal_address: str, **overrides: object) -> Settings:
    """Settings for a benchmark run: its own stores and task queues, no rate limits in the way."""
    values: dict[str, object] = {
        "database_url": stores.database_url,
        "redis_url": stores.redis_url,
        "temporal_address": temporal_address,
        "payment_sync_wait_seconds": 60.0,  # the HTTP answer comes when the ledger is posted
        "max_payments_per_hour": 10**9,  # the risk rule's velocity limit would stop the run
        "task_queue": f"bench-{uuid.uuid4().hex[:6]}",
        "external_task_queue": f"bench-ext-{uuid.uuid4().hex[:6]}",
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[arg-type]


@asynccontextmanager
async def api_process(
    settings: Settings, port: int, extra_env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`vortex api` in its own process, as in production: its CPU is not the worker's."""
    env = (
        os.environ
        | (extra_env or {})
        | {
            "VORTEX_DATABASE_URL": str(settings.database_url),
            "VORTEX_REDIS_URL": str(settings.redis_url),
            "VORTEX_TEMPORAL_ADDRESS": str(settings.temporal_address),
            "VORTEX_TASK_QUEUE": settings.task_queue,
            "VORTEX_EXTERNAL_TASK_QUEUE": settings.external_task_queue,
            "VORTEX_API_PORT": str(port),
            "VORTEX_PAYMENT_SYNC_WAIT_SECONDS": str(settings.payment_sync_wait_seconds),
            "VORTEX_MAX_PAYMENTS_PER_HOUR": str(settings.max_payments_per_hour),
            "VORTEX_PROCESSOR_WEBHOOK_SECRET": settings.processor_webhook_secret.get_secret_value(),
            "VORTEX_SECRET_KEY": settings.secret_key.get_secret_value(),
            "VORTEX_PAYLOAD_ENCRYPTION": str(settings.payload_encryption).lower(),
            "VORTEX_LOG_LEVEL": "WARNING",
        }
    )
    async with python_server(port, ["-m", "cli.main", "api"], env=env) as process:
        yield process


@asynccontextmanager
async def python_server(
    port: int, args: list[str], *, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python <args>` in its own process, once it listens on `port`; terminated afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, stdin=asyncio.subprocess.DEVNULL
    )
    try:
        await asyncio.to_thread(wait_for_port, port, 60.0)
        yield process
    finally:
        process.terminate()
        await process.wait()


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """`--database-url`: a PostgreSQL server to create the benchmark's database on."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VORTEX_BENCH_DATABASE_URL"),
        help="PostgreSQL server (default: VORTEX_BENCH_DATABASE_URL, else embedded)",
    )
