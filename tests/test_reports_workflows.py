"""Monthly reports on Temporal: the Schedule's run reports the month before its scheduled time;
the fan-out pages through customers in a sliding window and continues as new; reruns, the CLI
backfill and a child started again never duplicate a report or its notice; histories replay."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError

from cli.reports import backfill
from core.db import SessionFactory
from core.settings import Settings
from models.reports.payloads import MonthlyReportInput, MonthlyReportState
from temporal.schedules import apply_schedules, monthly_reports_input, project_schedules
from tests.conftest import RunningWorkers
from tests.notifications_support import (
    eventually,
    feed_once,
    notice_settings,
    notices,
    relay_outbox,
)
from tests.replay_support import HISTORIES, recorded, replay
from tests.reports_support import MONTH, outbox_count, reports_of, seed_customers, seed_month
from workflows.monthly_reports import MonthlyReportsWorkflow, MonthlyReportWorkflow


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Queues, schedule ids and notifier ids of this test; small fan-out batches."""
    return notice_settings(base_settings).model_copy(
        update={
            "schedule_id_prefix": f"test-{uuid.uuid4().hex[:8]}-",
            "monthly_reports_page_size": 40,
            "monthly_reports_max_in_flight": 15,
            "monthly_reports_pages_per_run": 2,
        }
    )


@pytest.fixture
async def schedules(settings: Settings, temporal_client: Client) -> AsyncIterator[list[str]]:
    """This test's schedules, deleted afterwards."""
    ids = [s.id for s in project_schedules(settings)]
    yield ids
    for schedule_id in ids:
        with contextlib.suppress(RPCError):
            await temporal_client.get_schedule_handle(schedule_id).delete()


async def test_the_schedule_reports_the_month_before_its_time_with_events_and_a_notice(
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    workers: RunningWorkers,
    schedules: list[str],
    database_url: str,
    redis: Redis,
) -> None:
    customers = await seed_customers(sessions, 3)
    ada, ada_account = customers[0]
    await seed_month(sessions, ada, ada_account)
    await apply_schedules(temporal_client, settings)
    handle = temporal_client.get_schedule_handle(f"{settings.schedule_id_prefix}monthly-reports")
    described = await handle.describe()
    calendar = described.schedule.spec.calendars[0]
    assert [r.start for r in calendar.day_of_month] == [1]
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ONE
    assert described.schedule.policy.catchup_window == timedelta(days=7)

    # The Schedule's own backfill of its 2026-11-01 run: it reports October.
    start = datetime(2026, 11, 1, tzinfo=UTC)
    await handle.backfill(
        ScheduleBackfill(
            start_at=start,
            end_at=start + timedelta(hours=1),
            overlap=ScheduleOverlapPolicy.ALLOW_ALL,
        )
    )

    async def all_ready() -> list[Any] | None:
        rows = await reports_of(sessions)
        return rows if len(rows) == 3 and all(r.status == "ready" for r in rows) else None

    rows = await eventually(all_ready, "three ready reports")
    assert {f"{r.month:%Y-%m}" for r in rows} == {MONTH}
    mine = next(r for r in rows if r.user_id == ada)
    eur = mine.figures["currencies"][0]
    assert (eur["income"], eur["spending"], eur["previous_spending"]) == (300_000, 113_450, 7_000)
    assert eur["categories"][0]["category"] == "utilities"
    assert len(eur["daily_spending"]) == 31
    assert eur["daily_spending"][1] == 85_000
    assert "1134.50 EUR" in mine.narrative
    assert await outbox_count(sessions, "report.ready") == 3
    assert await outbox_count(sessions, "ai.insight.ready") == 3

    await relay_outbox(database_url, redis)
    await feed_once(redis, temporal_client, settings)

    async def report_notice() -> list[Any] | None:
        found = [n for n in await notices(sessions, ada) if n.event_type == "report.ready"]
        return found or None

    notice = (await eventually(report_notice, "the report notice"))[0]
    assert "October 2026" in notice.body


async def test_the_fan_out_continues_as_new_and_reruns_never_duplicate(
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    workers: RunningWorkers,
) -> None:
    customers = await seed_customers(sessions, 200)
    await seed_month(sessions, *customers[7])
    inp = monthly_reports_input(settings, MONTH)
    handle = await temporal_client.start_workflow(
        MonthlyReportsWorkflow.run,
        inp,
        id=f"test-monthly-reports-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )
    result = await handle.result()

    assert (result.reports, result.skipped, result.failed) == (200, 0, 0)
    first_run = temporal_client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    history = await first_run.fetch_history()
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "monthly_reports_continued.json").write_text(history.to_json())
    rows = await reports_of(sessions)
    assert len(rows) == 200
    assert {r.status for r in rows} == {"ready"}

    # The CLI backfill of the same month: every child id has run, nothing is redone.
    outcome, failed = await backfill(settings, MONTH, wait=True)
    assert failed == 0
    assert "0 reports, 200 skipped" in outcome
    # A child started again under another id (its old id long gone) finds the report ready.
    again: MonthlyReportState = await temporal_client.execute_workflow(
        MonthlyReportWorkflow.run,
        MonthlyReportInput(
            user_id=customers[7][0], month=MONTH, narrative_task_queue=settings.external_task_queue
        ),
        id=f"test-monthly-report-again-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )
    assert again.status == "already_ready"
    assert not again.announced
    assert len(await reports_of(sessions)) == 200
    assert await outbox_count(sessions, "report.ready") == 200
    assert await outbox_count(sessions, "ai.insight.ready") == 200


@pytest.mark.parametrize(
    "path",
    [*recorded("MonthlyReportsWorkflow"), *recorded("MonthlyReportWorkflow")],
    ids=lambda p: p.stem,
)
async def test_recorded_report_histories_replay(path: Path) -> None:
    workflow = MonthlyReportsWorkflow if "reports" in path.stem else MonthlyReportWorkflow
    await replay(path, workflow)
