"""The platform on the time-skipping test server: its services, both workers, and the API in
process, for tests that sleep through days of workflow timers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from workers.assembly import WorkerDeps, build_workers


@asynccontextmanager
async def platform_on(
    env: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The in-process API client and its services, with the workers running on `env`."""
    services = await Services.connect(settings, temporal=env.client)
    try:
        workers = build_workers(
            env.client, WorkerDeps(settings=settings, sessions=sessions, email=outbox)
        )
        transport = httpx.ASGITransport(app=create_app(settings, services))
        async with (
            workers[0],
            workers[1],
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as api,
        ):
            yield api, services
    finally:
        await services.close()
