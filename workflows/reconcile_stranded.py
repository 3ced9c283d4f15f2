"""ReconcileStrandedWorkflow: no payment stays stuck because of a workflow that never started or
that ended without finishing it.

Run by the `reconcile-stranded` Temporal Schedule (`vortex schedules`, every minute by
default). Page by page over the non-terminal payments older than the grace period:
- no workflow under the payment's id (the API wrote the row, then could not start it, e.g.
  Temporal was down): start it now, same id, same input (rebuilt from the row);
- a transfer whose workflow was terminated, failed or timed out: failed, with the reason
  (nothing was posted: posting and completing the row are one transaction);
- an external payment whose workflow ended: the rail decides (settled -> hold captured,
  completed; rejected/cancelled/unknown to the rail -> hold released); a payment the rail still
  has pending, or a rail that cannot be reached, waits for the next run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.payment_recovery import PaymentRecoveryActivities, rail_verdict
    from activities.rail_payments import RailActivities
    from models.payments.payloads import (
        RailStatusInput,
        ReconcileCandidate,
        ReconcileStrandedInput,
        ReconcileStrandedResult,
        RecoverStrandedInput,
        ResolvePaymentInput,
    )
    from temporal.activity_options import DB_RETRY, EXTERNAL_ACTIVITY_TIMEOUT, db_step
    from temporal.errors import non_retryable
    from temporal.status import publish_status

PAGE_TIMEOUT = timedelta(minutes=5)  # one page: a describe (and maybe a start) per payment
PAGE_HEARTBEAT = timedelta(seconds=30)
RAIL_LOOKUP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


@workflow.defn(name="ReconcileStrandedWorkflow")
class ReconcileStrandedWorkflow:
    """Starts stranded payments' workflows and resolves payments left unfinished."""

    @workflow.init
    def __init__(self, inp: ReconcileStrandedInput) -> None:
        self._result = ReconcileStrandedResult()

    @workflow.run
    async def run(self, inp: ReconcileStrandedInput) -> ReconcileStrandedResult:
        """Check every page of candidates once (up to `max_batches`)."""
        publish_status("reconcile_running")
        page_in = RecoverStrandedInput(grace_seconds=inp.grace_seconds, limit=inp.batch_size)
        while self._result.batches < inp.max_batches:
            page = await workflow.execute_activity_method(
                PaymentRecoveryActivities.recover_stranded,
                page_in,
                start_to_close_timeout=PAGE_TIMEOUT,
                heartbeat_timeout=PAGE_HEARTBEAT,
                retry_policy=DB_RETRY,
            )
            self._result.batches += 1
            self._result.checked += page.checked
            self._result.started += len(page.started)
            self._result.resolved += len(page.resolved)
            for candidate in page.to_reconcile:
                await self._reconcile(inp, candidate)
            if page.next_id is None:
                break
            page_in = page_in.model_copy(
                update={"after_created_at": page.next_created_at, "after_id": page.next_id}
            )
        publish_status("reconcile_done")
        return self._result

    @workflow.query
    def status(self) -> ReconcileStrandedResult:
        """What this run has done so far."""
        return self._result

    async def _reconcile(self, inp: ReconcileStrandedInput, candidate: ReconcileCandidate) -> None:
        """Ask the rail about one external payment and resolve it by the answer."""
        try:
            lookup = await workflow.execute_activity_method(
                RailActivities.status,
                RailStatusInput(reference=str(candidate.payment_id)),
                task_queue=inp.rail_task_queue,
                start_to_close_timeout=EXTERNAL_ACTIVITY_TIMEOUT,
                retry_policy=RAIL_LOOKUP_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("rail unreachable: %s left for later", candidate.payment_id)
            self._result.left_for_later += 1
            return
        verdict = rail_verdict(lookup.payment, candidate)
        if verdict is None:
            self._result.left_for_later += 1
            return
        outcome, reason = verdict
        try:
            await workflow.execute_activity_method(
                PaymentRecoveryActivities.resolve,
                ResolvePaymentInput(
                    payment_id=candidate.payment_id,
                    outcome=outcome,
                    reason=reason,
                    actor="reconciler",
                ),
                **db_step(inp.activity_timeout_seconds),
            )
        except ActivityError as exc:
            if (cause := non_retryable(exc)) is None:
                raise
            workflow.logger.warning("not resolved %s: %s", candidate.payment_id, cause.message)
            self._result.left_for_later += 1
            return
        self._result.resolved += 1
