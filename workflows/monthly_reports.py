"""Monthly reports: `MonthlyReportsWorkflow` fans out one `MonthlyReportWorkflow` per
(customer, month).

The parent derives the month from the Schedule's scheduled start time (the month before it),
so a Schedule backfill of 2026-12-01 reports November; a CLI backfill passes the month. It
pages through active customers with an activity and keeps at most `max_in_flight` children
running (a sliding window), then continues as new after `pages_per_run` pages (or when Temporal
suggests it) with its position and tallies, so any number of customers fits in bounded
histories. Children are named by business id with "reject duplicate unless failed": a child
that already ran (or is running, for an overlapping run) is counted as skipped, and the report
row is unique per (user, month) anyway.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.analytics.periods import add_months
    from activities.reports.activities import ReportActivities
    from models.reports.payloads import (
        ComputedReport,
        CustomersPageInput,
        MonthlyReportInput,
        MonthlyReportsInput,
        MonthlyReportsState,
        MonthlyReportState,
        ReportRef,
    )
    from temporal.activity_options import db_step, external_call
    from temporal.ids import monthly_report_workflow_id
    from temporal.status import publish_status

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def report_month(scheduled: datetime) -> str:
    """The month a run at `scheduled` reports on: the one before (UTC)."""
    first = add_months(scheduled.date().replace(day=1), -1)
    return f"{first:%Y-%m}"


@workflow.defn(name="MonthlyReportWorkflow")
class MonthlyReportWorkflow:
    """One customer's report of one month: figures, narrative, publish."""

    @workflow.init
    def __init__(self, inp: MonthlyReportInput) -> None:
        self._state = MonthlyReportState(user_id=inp.user_id, month=inp.month)

    @workflow.run
    async def run(self, inp: MonthlyReportInput) -> MonthlyReportState:
        """Compute (SQL), narrate (external queue), publish (ready + events, once)."""
        db = db_step(inp.activity_timeout_seconds)
        self._set("computing")
        computed: ComputedReport = await workflow.execute_activity_method(
            ReportActivities.compute, inp, **db
        )
        self._state.report_id = computed.report_id
        if computed.status == "ready":
            return self._set("already_ready")
        ref = ReportRef(report_id=computed.report_id)
        self._set("narrating")
        await workflow.execute_activity(
            "reports.narrate", ref, task_queue=inp.narrative_task_queue, **external_call()
        )
        published = await workflow.execute_activity_method(ReportActivities.publish, ref, **db)
        self._state.announced = published.announced
        return self._set("ready")

    @workflow.query
    def status(self) -> MonthlyReportState:
        """Where the report stands."""
        return self._state

    def _set(self, status: str) -> MonthlyReportState:
        self._state.status = status
        publish_status(f"report_{status}", user_id=self._state.user_id)
        return self._state


@workflow.defn(name="MonthlyReportsWorkflow")
class MonthlyReportsWorkflow:
    """Fans out the month's reports to every active customer, in bounded batches."""

    @workflow.init
    def __init__(self, inp: MonthlyReportsInput) -> None:
        self._state = MonthlyReportsState(
            month=inp.month, reports=inp.reports, skipped=inp.skipped, failed=inp.failed
        )

    @workflow.run
    async def run(self, inp: MonthlyReportsInput) -> MonthlyReportsState:
        """Page customers, keep `max_in_flight` children running, continue as new."""
        month = inp.month or self._scheduled_month()
        self._state.month = month
        self._set("running")
        db = db_step(inp.activity_timeout_seconds)
        after = inp.after_user
        pending: set[asyncio.Task[str]] = set()
        for _ in range(inp.pages_per_run):
            page = await workflow.execute_activity_method(
                ReportActivities.customers_page,
                CustomersPageInput(month=month, after_user=after, limit=inp.page_size),
                **db,
            )
            for user_id in page.user_ids:
                while len(pending) >= inp.max_in_flight:
                    pending = await self._settle(pending)
                child = MonthlyReportInput(
                    user_id=user_id,
                    month=month,
                    activity_timeout_seconds=inp.activity_timeout_seconds,
                    narrative_task_queue=inp.narrative_task_queue,
                )
                pending.add(asyncio.create_task(self._report(child)))
                self._state.in_flight = len(pending)
            if len(page.user_ids) < inp.page_size:
                await self._drain(pending)
                return self._set("done")
            after = page.user_ids[-1]
            if workflow.info().is_continue_as_new_suggested():
                break
        await self._drain(pending)
        self._set("continuing")
        workflow.continue_as_new(
            inp.model_copy(
                update={
                    "month": month,
                    "after_user": after,
                    "reports": self._state.reports,
                    "skipped": self._state.skipped,
                    "failed": self._state.failed,
                }
            )
        )

    def _scheduled_month(self) -> str:
        """From the Schedule's scheduled start time; a manual start without a month reports
        the month before now."""
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START)
        return report_month(scheduled or workflow.now())

    async def _report(self, inp: MonthlyReportInput) -> str:
        try:
            await workflow.execute_child_workflow(
                MonthlyReportWorkflow.run,
                inp,
                id=monthly_report_workflow_id(inp.user_id, inp.month),
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                static_summary="Monthly report",
            )
        except WorkflowAlreadyStartedError:
            return "skipped"  # done already, or running for an overlapping run
        except ChildWorkflowError:
            return "failed"
        return "reports"

    async def _settle(self, pending: set[asyncio.Task[str]]) -> set[asyncio.Task[str]]:
        done, still = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            self._tally(task.result())
        self._state.in_flight = len(still)
        return set(still)  # workflow.wait answers lists

    async def _drain(self, pending: set[asyncio.Task[str]]) -> None:
        while pending:
            pending = await self._settle(pending)

    def _tally(self, outcome: str) -> None:
        setattr(self._state, outcome, getattr(self._state, outcome) + 1)

    @workflow.query
    def status(self) -> MonthlyReportsState:
        """Month, tallies, children in flight."""
        return self._state

    def _set(self, status: str) -> MonthlyReportsState:
        self._state.status = status
        publish_status(f"reports_{status}")
        return self._state
