"""RecordExternalTransactionWorkflow: post one card or cash transaction from an external source.

Short on purpose: one idempotent ledger activity (keyed by account + external id), so a retried
API request, a retried activity or a second run under the same workflow id all land on the
same journal entry.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.ledger.activities import LedgerActivities
    from models.transactions.payloads import (
        ExternalTransactionInput,
        ExternalTransactionState,
        RecordedExternalTransaction,
    )
    from temporal.activity_options import db_step
    from temporal.errors import failure_type
    from temporal.status import publish_status


@workflow.defn(name="RecordExternalTransactionWorkflow")
class RecordExternalTransactionWorkflow:
    """Records one external transaction; fails with the ledger's rejection when refused."""

    @workflow.init
    def __init__(self, inp: ExternalTransactionInput) -> None:
        self._state = ExternalTransactionState(status="recording")

    @workflow.run
    async def run(self, inp: ExternalTransactionInput) -> RecordedExternalTransaction:
        """Run the ledger's record_external_transaction activity."""
        self._publish()
        try:
            result = await workflow.execute_activity_method(
                LedgerActivities.record_external_transaction,
                inp.request,
                **db_step(inp.activity_timeout_seconds),
            )
        except ActivityError as exc:
            if (reason := failure_type(exc)) is not None:
                self._state.status, self._state.reason = "rejected", reason
                self._publish()
            raise
        self._state.status, self._state.transaction_id = "recorded", result.transaction_id
        self._publish()
        return RecordedExternalTransaction(result=result, request_hash=inp.request_hash)

    @workflow.query
    def status(self) -> ExternalTransactionState:
        """Where the recording stands."""
        return self._state

    def _publish(self) -> None:
        publish_status(f"external_txn_{self._state.status}")
