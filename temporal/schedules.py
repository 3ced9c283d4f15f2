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
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from core.settings import Settings
from models.ledger.payloads import HoldExpiryInput
from models.payments.payloads import ReconcileStrandedInput


@dataclass(frozen=True)
class ProjectSchedule:
    """One schedule: its id, the workflow it starts with which argument, and how often."""

    id: str
    workflow: str
    arg: BaseModel
    every: timedelta
    note: str


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
    ]


def _schedule(item: ProjectSchedule, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            item.workflow, item.arg, id=item.id, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=item.every)]),
        # A run still going when the next is due: skip the new one (they do the same work).
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
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
