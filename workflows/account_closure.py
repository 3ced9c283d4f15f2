"""AccountClosureWorkflow: sweep the balance to a target if asked, then close the account."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.ledger.activities import LedgerActivities
    from models.accounts.payloads import AccountClosureInput, AccountClosureState
    from models.ledger.payloads import CloseAccountInput, ClosedAccount
    from temporal.activity_options import db_step
    from temporal.errors import failure_type
    from temporal.status import publish_status


@workflow.defn(name="AccountClosureWorkflow")
class AccountClosureWorkflow:
    """Closes one customer account; refuses (fails) when it is not empty and no sweep target."""

    @workflow.init
    def __init__(self, inp: AccountClosureInput) -> None:
        self._state = AccountClosureState(account_id=inp.account_id, status="closing")

    @workflow.run
    async def run(self, inp: AccountClosureInput) -> ClosedAccount:
        """Run the closing ledger operation (sweep + close in one transaction)."""
        self._publish()
        try:
            closed = await workflow.execute_activity_method(
                LedgerActivities.close_account,
                CloseAccountInput(
                    account_id=inp.account_id,
                    sweep_to_account_id=inp.sweep_to_account_id,
                    owner_user_id=inp.owner_user_id,
                ),
                **db_step(inp.activity_timeout_seconds),
            )
        except ActivityError as exc:
            if (reason := failure_type(exc)) is not None:
                self._state.status, self._state.reason = "refused", reason
                self._publish()
            raise
        self._state.status = "closed"
        self._publish()
        return closed

    @workflow.query
    def status(self) -> AccountClosureState:
        """Where the closure stands."""
        return self._state

    def _publish(self) -> None:
        publish_status(f"closure_{self._state.status}")
