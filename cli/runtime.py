"""Run the workers and the API in-process until a stop event is set."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from temporalio.client import Client

from activities.events.relay import OutboxRelay, RelayConfig
from activities.notifications.feed import NotificationFeed
from api.app import create_app
from api.services import Services
from core.db import asyncpg_dsn, create_engine, create_session_factory
from core.email import create_email_backend
from core.heap import freeze_startup_heap
from core.http_server import server_config
from core.metrics import serve_app_metrics
from core.redis import create_redis
from core.settings import Settings
from temporal.client import connect_for
from temporal.metrics import worker_runtime
from workers.assembly import WorkerDeps, build_workers


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: `vortex` owns Ctrl-C and stops in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_relay(settings: Settings, stop: asyncio.Event) -> None:
    """Run the outbox relay until `stop` is set (a standby while another process leads)."""
    redis = create_redis(settings.effective_redis_url, timeout=settings.redis_timeout_seconds)
    relay = OutboxRelay(
        asyncpg_dsn(settings.effective_database_url), redis, RelayConfig.of(settings)
    )
    try:
        await relay.run(stop)
    finally:
        await redis.aclose()


async def run_notification_feed(settings: Settings, stop: asyncio.Event, client: Client) -> None:
    """Run the notification feed (consumer group `notifier`) until `stop` is set."""
    redis = create_redis(settings.effective_redis_url)  # no socket timeout: XREADGROUP blocks
    try:
        await NotificationFeed(redis, client, settings).run(stop)
    finally:
        await redis.aclose()


async def run_workers(
    settings: Settings, stop: asyncio.Event, client: Client | None = None, *, relay: bool = True
) -> None:
    """Run both workers, the notification feed and (unless `relay` is off) the outbox relay
    until `stop` is set, then let in-flight tasks finish. Metrics: the SDK's on the client's
    runtime (`worker_runtime`, given by whoever built `client`), the business ones here."""
    client = client or await connect_for(settings, runtime=worker_runtime(settings))
    stop_metrics = serve_app_metrics(settings.worker_metrics_host, settings.worker_app_metrics_port)
    engine = create_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    deps = WorkerDeps(
        settings=settings,
        sessions=create_session_factory(engine),
        email=create_email_backend(settings),
    )
    workers = build_workers(client, deps)
    freeze_startup_heap()  # full collections skip what the workers were built from (decision 94)
    running = [asyncio.create_task(w.run()) for w in workers]
    running.append(asyncio.create_task(run_notification_feed(settings, stop, client)))
    if relay:
        running.append(asyncio.create_task(run_relay(settings, stop)))
    try:
        await _until_stop_or_failure(stop, running)
    finally:
        stop.set()  # the relay ends with it
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*running, return_exceptions=True)
        await engine.dispose()
        await asyncio.to_thread(stop_metrics)  # shutdown() waits for its serve loop


async def run_api(settings: Settings, stop: asyncio.Event, client: Client | None = None) -> None:
    """Serve the API until `stop` is set, then drain connections."""
    services = await Services.connect(settings, temporal=client)
    config = server_config(
        create_app(settings, services),
        host=settings.api_host,
        port=settings.api_port,
        lifespan="on",
        # A WebSocket message above this is cut off by uvicorn (close 1009) before the app
        # reads it; below it, /ws answers `message-too-large` for anything over its own limit.
        ws_max_size=max(settings.max_body_bytes, settings.ws_max_message_bytes),
        # Above the 5 s idle expiry of common clients (httpx, many proxies): a client reusing a
        # pooled connection must never race the server closing it.
        timeout_keep_alive=30,
    )
    # Full collections no longer walk the app, its routes and models: a stall now and then
    # (the p99 of the reads, decision 79).
    freeze_startup_heap()
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(_serve(server))
    try:
        await _until_stop_or_failure(stop, [serving])
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await services.close()


async def _serve(server: uvicorn.Server) -> None:
    """uvicorn exits the process (SystemExit) when it cannot bind; make that an ordinary error,
    since a SystemExit escaping a task tears through the event loop."""
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"the API server could not start (exit code {exc.code})") from None


async def _until_stop_or_failure(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Wait for `stop`; if a task ends first (a crash), re-raise its error."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in done:
        if task is not stopper:
            stop.set()
            task.result()
            raise RuntimeError("a service stopped unexpectedly")
