"""ReconcileRowsWorkflow: no link or registration stays stuck because of a workflow that never
started or that ended without finishing it (the sibling of ReconcileStrandedWorkflow, for rows
that are not payments).

Run by the `reconcile-rows` Temporal Schedule (`vortex schedules`, on the stranded-payment
interval). Page by page, for each kind of row, over the non-final rows older than the grace
period; what is done to each is `activities/row_recovery.py`'s to decide.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.row_recovery import RowRecoveryActivities
    from models.recovery.payloads import (
        ROW_KINDS,
        ReconcileRowsInput,
        ReconcileRowsResult,
        RecoverRowsInput,
    )
    from temporal.activity_options import DB_RETRY
    from temporal.status import publish_status

PAGE_TIMEOUT = timedelta(minutes=5)  # one page: a describe (and maybe a start) per row
PAGE_HEARTBEAT = timedelta(seconds=30)


@workflow.defn(name="ReconcileRowsWorkflow")
class ReconcileRowsWorkflow:
    """Starts stranded links' workflows; closes links and registrations left unfinished."""

    @workflow.init
    def __init__(self, inp: ReconcileRowsInput) -> None:
        self._result = ReconcileRowsResult()

    @workflow.run
    async def run(self, inp: ReconcileRowsInput) -> ReconcileRowsResult:
        """Check every page of each kind once (up to `max_batches` pages per kind)."""
        publish_status("reconcile_running")
        for kind in ROW_KINDS:
            page_in = RecoverRowsInput(
                kind=kind, grace_seconds=inp.grace_seconds, limit=inp.batch_size
            )
            for _ in range(inp.max_batches):
                page = await workflow.execute_activity_method(
                    RowRecoveryActivities.recover_rows,
                    page_in,
                    start_to_close_timeout=PAGE_TIMEOUT,
                    heartbeat_timeout=PAGE_HEARTBEAT,
                    retry_policy=DB_RETRY,
                )
                self._count(kind, page.checked, len(page.started), len(page.closed))
                if page.next_id is None:
                    break
                page_in = page_in.model_copy(
                    update={"after_created_at": page.next_created_at, "after_id": page.next_id}
                )
        publish_status("reconcile_done")
        return self._result

    @workflow.query
    def status(self) -> ReconcileRowsResult:
        """What this run has done so far."""
        return self._result

    def _count(self, kind: str, checked: int, started: int, closed: int) -> None:
        result = self._result
        result.batches += 1
        result.checked[kind] = result.checked.get(kind, 0) + checked
        result.started[kind] = result.started.get(kind, 0) + started
        result.closed[kind] = result.closed.get(kind, 0) + closed
