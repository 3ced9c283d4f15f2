"""The `expire-holds` Temporal Schedule: applied idempotently, and a run releases every pending
hold past its expiry (and nothing else). Schedules need the dev server, not time skipping."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError

from activities import ledger
from core.db import SessionFactory
from core.settings import Settings
from models.ledger.payloads import PlaceHoldInput
from temporal.schedules import apply_schedules, project_schedules
from tests.conftest import RunningWorkers
from tests.ledger_support import assert_ledger_ok, balances, funded_account, new_user, run
from tests.rail_support import eventually


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Schedule ids of this test only (the dev server outlives every test)."""
    return settings.model_copy(update={"schedule_id_prefix": f"test-{uuid.uuid4().hex[:8]}-"})


@pytest.fixture
async def schedules(settings: Settings, temporal_client: Client) -> AsyncIterator[list[str]]:
    """The ids of this test's schedules, deleted afterwards."""
    ids = [s.id for s in project_schedules(settings)]
    yield ids
    for schedule_id in ids:
        with contextlib.suppress(RPCError):  # never created
            await temporal_client.get_schedule_handle(schedule_id).delete()


async def test_schedules_are_created_once_then_updated_in_place(
    settings: Settings, temporal_client: Client, schedules: list[str]
) -> None:
    first = await apply_schedules(temporal_client, settings)
    second = await apply_schedules(temporal_client, settings)
    described = await temporal_client.get_schedule_handle(schedules[0]).describe()

    assert first == [(schedule_id, "created") for schedule_id in schedules]
    assert second == [(schedule_id, "updated") for schedule_id in schedules]
    assert schedules[1].endswith("reconcile-stranded")
    assert described.schedule.spec.intervals[0].every == timedelta(hours=1)
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "ExpireHoldsWorkflow"
    assert action.task_queue == settings.task_queue


async def test_a_scheduled_run_releases_the_holds_past_their_expiry_only(
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    workers: RunningWorkers,
    schedules: list[str],
) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 10_000)
    first, second = [
        await run(
            sessions,
            ledger.place_hold,
            PlaceHoldInput(
                idempotency_key=f"test-hold-{amount}",
                account_id=account,
                amount=amount,
                currency="EUR",
            ),
        )
        for amount in (1_000, 2_000)
    ]
    async with sessions() as session, session.begin():  # the first one's time has come
        await session.execute(
            text("UPDATE holds SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": first.hold_id},
        )
    await apply_schedules(temporal_client, settings)

    await temporal_client.get_schedule_handle(schedules[0]).trigger()

    async def expired() -> bool | None:
        return True if await balances(sessions, account) == [(10_000, 2_000)] else None

    await eventually(expired, max_wait=30, interval=0.2)
    async with sessions() as session:
        statuses: dict[uuid.UUID, str] = dict(
            (await session.execute(text("SELECT id, status FROM holds"))).tuples().all()
        )
    assert statuses == {first.hold_id: "expired", second.hold_id: "pending"}
    await assert_ledger_ok(sessions)
