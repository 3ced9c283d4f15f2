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
