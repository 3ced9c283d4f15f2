"""The baseline workflow of the transfer benchmark, in a module of its own so the workflow
sandbox re-imports nothing but temporalio."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop_withdraw")
async def noop_withdraw(amount: int) -> None:
    """The baseline's first step: does nothing."""


@activity.defn(name="bench.noop_deposit")
async def noop_deposit(amount: int) -> None:
    """The baseline's second step: does nothing."""


@workflow.defn(name="BareTransferWorkflow")
class BareTransferWorkflow:
    """Two no-op activities in sequence: the money-transfer sample's shape."""

    @workflow.run
    async def run(self, amount: int) -> None:
        """Withdraw, then deposit."""
        timeout = timedelta(seconds=30)
        await workflow.execute_activity(noop_withdraw, amount, start_to_close_timeout=timeout)
        await workflow.execute_activity(noop_deposit, amount, start_to_close_timeout=timeout)


@workflow.defn(name="BareLocalTransferWorkflow")
class BareLocalTransferWorkflow:
    """The same two no-op steps as local activities: the transfer path's own shape (its ledger
    steps are local activities), so the honest baseline for it."""

    @workflow.run
    async def run(self, amount: int) -> None:
        """Withdraw, then deposit, both in the workflow's worker."""
        timeout = timedelta(seconds=30)
        await workflow.execute_local_activity(noop_withdraw, amount, start_to_close_timeout=timeout)
        await workflow.execute_local_activity(noop_deposit, amount, start_to_close_timeout=timeout)
