"""The baseline of the reports benchmark, in a module of its own so the workflow sandbox
re-imports nothing but temporalio: the same sliding window over no-op children."""

from __future__ import annotations

import asyncio

from temporalio import workflow


@workflow.defn(name="BareNoopChildWorkflow")
class BareNoopChildWorkflow:
    """Does nothing."""

    @workflow.run
    async def run(self, n: int) -> int:
        """Return the number given."""
        return n


@workflow.defn(name="BareFanOutWorkflow")
class BareFanOutWorkflow:
    """`count` no-op children, at most `window` in flight: the fan-out without the reports."""

    @workflow.run
    async def run(self, args: list[int]) -> int:
        """Start every child through the window; the number completed."""
        count, window = args
        pending: set[asyncio.Task[int]] = set()
        done_count = 0
        base = workflow.info().workflow_id
        for n in range(count):
            while len(pending) >= window:
                done, still = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                done_count += len(done)
                pending = set(still)
            pending.add(
                asyncio.create_task(
                    workflow.execute_child_workflow(
                        BareNoopChildWorkflow.run, n, id=f"{base}-child-{n}"
                    )
                )
            )
        if pending:
            await workflow.wait(pending)
            done_count += len(pending)
        return done_count
