"""RegistrationWorkflow timers on the time-skipping server, and replay of recorded histories."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from api.auth.registration import RegistrationService
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.identity.schemas import RegistrationCreate
from models.identity.tables import Registration, RegistrationStatus, User
from temporal.handles import handle_for
from temporal.ids import registration_workflow_id
from tests.conftest import TEST_CONVERTER
from tests.flows import register_customer
from tests.replay_support import HISTORIES, recorded, replay
from workers.assembly import WorkerDeps, build_workers
from workflows.registration import RegistrationWorkflow


def _signup(email: str) -> RegistrationCreate:
    return RegistrationCreate(
        email=email,
        password="correct-horse-battery-staple-42",
        first_name="Ada",
        last_name="Lovelace",
    )


async def test_unfinished_registration_expires_and_frees_the_email(
    time_skipping: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    client: Client = time_skipping.client
    services = await Services.connect(settings, temporal=client)
    deps = WorkerDeps(settings=settings, sessions=sessions, email=outbox)
    try:
        workers = build_workers(client, deps)
        async with workers[0], workers[1]:
            registrations = RegistrationService(services)
            registration_id = await registrations.register(_signup("late@example.com"), "test")
            handle = handle_for(
                client, RegistrationWorkflow.run, registration_workflow_id(registration_id)
            )

            await time_skipping.sleep(timedelta(seconds=settings.registration_expiry_seconds + 60))
            result = await handle.result()

            assert result.status == RegistrationStatus.EXPIRED
            async with sessions() as session:
                registration = await session.get(Registration, registration_id)
                users = await session.scalar(select(func.count()).select_from(User))
            assert registration is not None
            assert registration.status == RegistrationStatus.EXPIRED
            assert users == 0
            again = await registrations.register(_signup("late@example.com"), "test")
            async with sessions() as session:
                assert await session.scalar(select(func.count()).select_from(User)) == 1
            assert again != registration_id
    finally:
        await services.close()


async def test_completed_registration_history_replays_deterministically(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, temporal_client: Client
) -> None:
    customer = await register_customer(api, outbox)
    handle = temporal_client.get_workflow_handle(
        registration_workflow_id(uuid.UUID(customer.registration_id))
    )
    history = await handle.fetch_history()
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "registration_completed.json").write_text(history.to_json())

    replayer = Replayer(workflows=[RegistrationWorkflow], data_converter=TEST_CONVERTER)
    await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", recorded("RegistrationWorkflow"), ids=lambda p: p.stem)
async def test_recorded_registration_histories_still_replay(path: Path) -> None:
    await replay(path, RegistrationWorkflow)
