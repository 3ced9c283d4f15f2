"""The project's Temporal Schedules, created or updated idempotently (`vortex schedules`,
applied by `vortex dev` at start). Later domains add theirs to `project_schedules`.

Workflows are named by their registered type, so this module needs no workflow code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from core.settings import Settings
from models.ai.payloads import TrainCategorizerInput
from models.ledger.payloads import HoldExpiryInput
from models.payments.payloads import ReconcileStrandedInput
from models.recovery.payloads import ReconcileRowsInput
from models.reports.payloads import MonthlyReportsInput


@dataclass(frozen=True)
class ProjectSchedule:
    """One schedule: its id, the workflow it starts with which argument, and how often."""

    id: str
    workflow: str
    arg: BaseModel
    every: timedelta
    note: str
    # A calendar instead of an interval (the monthly reports: 00:30 UTC on the 1st).
    monthly: bool = False


def project_schedules(settings: Settings) -> list[ProjectSchedule]:
    """Every schedule the platform runs."""
    prefix = settings.schedule_id_prefix
    return [
        ProjectSchedule(
            id=f"{prefix}expire-holds",
            workflow="ExpireHoldsWorkflow",
            arg=HoldExpiryInput(activity_timeout_seconds=settings.db_activity_timeout_seconds),
            every=timedelta(seconds=settings.hold_expiry_interval_seconds),
            note="Release pending holds past their expiry",
        ),
        ProjectSchedule(
            id=f"{prefix}reconcile-stranded",
            workflow="ReconcileStrandedWorkflow",
            arg=ReconcileStrandedInput(
                grace_seconds=settings.stranded_grace_seconds,
                rail_task_queue=settings.external_task_queue,
                activity_timeout_seconds=settings.db_activity_timeout_seconds,
            ),
            every=timedelta(seconds=settings.stranded_reconcile_interval_seconds),
            note="Start stranded payments' workflows; resolve payments left unfinished",
        ),
        ProjectSchedule(
            id=f"{prefix}reconcile-rows",
            workflow="ReconcileRowsWorkflow",
            arg=ReconcileRowsInput(grace_seconds=settings.stranded_grace_seconds),
            every=timedelta(seconds=settings.stranded_reconcile_interval_seconds),
            note="Start stranded links' workflows; close links and sign-ups left unfinished",
        ),
        ProjectSchedule(
            id=f"{prefix}monthly-reports",
            workflow="MonthlyReportsWorkflow",
            arg=monthly_reports_input(settings),
            every=timedelta(days=31),
            note="Each customer's report of the month before (00:30 UTC on the 1st)",
            monthly=True,
        ),
        ProjectSchedule(
            id=f"{prefix}categorizer-training",
            workflow="CategorizerTrainingWorkflow",
            arg=TrainCategorizerInput(
                min_rows=settings.ai_training_min_rows,
                max_rows=settings.ai_training_max_rows,
                activity_timeout_seconds=settings.db_activity_timeout_seconds,
            ),
            every=timedelta(seconds=settings.ai_training_interval_seconds),
            note="Train the categorizer's text classifier; use it only if it beats the rules",
        ),
    ]


def monthly_reports_input(settings: Settings, month: str | None = None) -> MonthlyReportsInput:
    """The fan-out's input: batch sizes and queues only; the month comes from the scheduled
    start time unless given (a CLI backfill)."""
    return MonthlyReportsInput(
        month=month,
        page_size=settings.monthly_reports_page_size,
        max_in_flight=settings.monthly_reports_max_in_flight,
        pages_per_run=settings.monthly_reports_pages_per_run,
        activity_timeout_seconds=settings.db_activity_timeout_seconds,
        narrative_task_queue=settings.external_task_queue,
    )


def _spec(item: ProjectSchedule) -> ScheduleSpec:
    if item.monthly:
        return ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_month=[ScheduleRange(1)],
                    hour=[ScheduleRange(0)],
                    minute=[ScheduleRange(30)],
                    comment="the 1st of every month, 00:30 UTC",
                )
            ]
        )
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=item.every)])


def _policy(item: ProjectSchedule) -> SchedulePolicy:
    if item.monthly:
        # Reports are idempotent per (customer, month): a run still going when the next month
        # is due goes on, the next waits for it (BUFFER_ONE); a Temporal outage of up to 7 days
        # still produces the month's run when the server is back (catch-up window).
        return SchedulePolicy(
            overlap=ScheduleOverlapPolicy.BUFFER_ONE, catchup_window=timedelta(days=7)
        )
    # A run still going when the next is due: skip the new one (they do the same work).
    return SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP)


def _schedule(item: ProjectSchedule, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            item.workflow, item.arg, id=item.id, task_queue=task_queue
        ),
        spec=_spec(item),
        policy=_policy(item),
    )


async def apply_schedules(
    client: Client, settings: Settings
) -> list[tuple[str, Literal["created", "updated"]]]:
    """Create each schedule, or update it in place when it exists (safe to run again)."""
    applied: list[tuple[str, Literal["created", "updated"]]] = []
    for item in project_schedules(settings):
        wanted = _schedule(item, settings.task_queue)
        try:
            await client.create_schedule(item.id, wanted, memo={"note": item.note})
            applied.append((item.id, "created"))
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, schedule: Schedule = wanted) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(item.id).update(replace)
            applied.append((item.id, "updated"))
    return applied
