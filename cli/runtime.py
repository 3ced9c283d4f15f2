"""Run the workers and the API in-process until a stop event is set."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from temporalio.client import Client

from api.app import create_app
from api.services import Services
from core.db import create_engine, create_session_factory
from core.email import create_email_backend
from core.settings import Settings
from temporal.client import connect_temporal
from workers.assembly import WorkerDeps, build_workers


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: `vortex` owns Ctrl-C and stops in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_workers(
    settings: Settings, stop: asyncio.Event, client: Client | None = None
) -> None:
    """Run both workers until `stop` is set, then let in-flight tasks finish."""
    client = client or await connect_temporal(
        settings.effective_temporal_address, settings.temporal_namespace
    )
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
    running = [asyncio.create_task(w.run()) for w in workers]
    try:
        await _until_stop_or_failure(stop, running)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await engine.dispose()


async def run_api(settings: Settings, stop: asyncio.Event, client: Client | None = None) -> None:
    """Serve the API until `stop` is set, then drain connections."""
    services = await Services.connect(settings, temporal=client)
    config = uvicorn.Config(
        create_app(settings, services),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        lifespan="on",
    )
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
