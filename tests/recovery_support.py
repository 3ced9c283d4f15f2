"""Helpers of the fault tests: an API whose dependencies are down, stranded payment rows, and a
reconciler run on the test's own task queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from api.app import create_app
from api.services import Services
from core.db import SessionFactory
from core.embedded import free_port
from core.settings import Settings
from models.ledger.tables import LedgerAccount
from models.payments.payloads import ReconcileStrandedInput, ReconcileStrandedResult
from tests.conftest import TEST_CONVERTER
from workflows.reconcile_stranded import ReconcileStrandedWorkflow

PROBLEM = "application/problem+json"


def closed_address() -> str:
    """host:port where nothing listens."""
    return f"127.0.0.1:{free_port()}"


async def unreachable_temporal() -> Client:
    """A client of a Temporal frontend that does not exist (it connects on first use)."""
    return await Client.connect(closed_address(), lazy=True, data_converter=TEST_CONVERTER)


@asynccontextmanager
async def api_with(
    settings: Settings, temporal: Client, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on `settings` changed by `overrides` (e.g. a database URL that points
    nowhere), with the given Temporal client."""
    services = await Services.connect(settings.model_copy(update=overrides), temporal=temporal)
    try:
        app = create_app(services.settings, services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await services.close()


async def owner_of(sessions: SessionFactory, account_id: str) -> uuid.UUID:
    """The user owning an account."""
    async with sessions() as session:
        owner = await session.scalar(
            select(col(LedgerAccount.owner_user_id)).where(
                col(LedgerAccount.id) == uuid.UUID(account_id)
            )
        )
    assert owner is not None
    return owner


async def run_reconciler(
    client: Client, settings: Settings, *, grace_seconds: float = 0.0
) -> ReconcileStrandedResult:
    """One ReconcileStrandedWorkflow run on the test's task queue (what the schedule starts)."""
    return await client.execute_workflow(
        ReconcileStrandedWorkflow.run,
        ReconcileStrandedInput(
            grace_seconds=grace_seconds,
            rail_task_queue=settings.external_task_queue,
            activity_timeout_seconds=settings.db_activity_timeout_seconds,
        ),
        id=f"test-reconcile-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )
