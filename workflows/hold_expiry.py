"""ExpireHoldsWorkflow: release every pending hold past its expiry, in batches.

Run by the `expire-holds` Temporal Schedule (`vortex schedules`, hourly by default). Holds that
a payment or card workflow owns normally end through that workflow; this sweep catches the
rest (a hold whose owner stopped waiting), so no money stays reserved past its expiry.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.ledger.activities import LedgerActivities
    from models.ledger.payloads import ExpireHoldsInput, HoldExpiryInput, HoldExpiryResult
    from temporal.activity_options import db_step
    from temporal.status import publish_status


@workflow.defn(name="ExpireHoldsWorkflow")
class ExpireHoldsWorkflow:
    """Expires holds past their expiry, batch by batch, until none is left (or the cap)."""

    @workflow.init
    def __init__(self, inp: HoldExpiryInput) -> None:
        self._result = HoldExpiryResult(expired=0, batches=0)

    @workflow.run
    async def run(self, inp: HoldExpiryInput) -> HoldExpiryResult:
        """Expire batches of holds due at the run's start time."""
        publish_status("hold_expiry_running")
        now = workflow.now()  # one cut-off for the whole run: deterministic and bounded
        while self._result.batches < inp.max_batches:
            batch = await workflow.execute_activity_method(
                LedgerActivities.expire_holds,
                ExpireHoldsInput(now=now, limit=inp.batch_size),
                **db_step(inp.activity_timeout_seconds),
            )
            self._result.batches += 1
            self._result.expired += len(batch.expired)
            if len(batch.expired) < inp.batch_size:
                break
        publish_status("hold_expiry_done")
        return self._result

    @workflow.query
    def status(self) -> HoldExpiryResult:
        """Holds expired so far by this run."""
        return self._result
