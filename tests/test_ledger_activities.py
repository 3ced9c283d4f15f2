"""Ledger activities through a real Temporal worker: registered by the worker assembly (only
those a workflow calls), results
and typed non-retryable rejections cross the pydantic data converter intact."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import ledger
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.ledger.payloads import PlacedHold, PlaceHoldInput
from tests.ledger_support import assert_ledger_ok, balances, funded_account, new_user
from workers.assembly import WorkerDeps, main_activities


class ProbeResult(BaseModel):
    """What the probe workflow saw."""

    first: PlacedHold
    retried: PlacedHold
    rejections: list[str]
    retry_states: list[str]


@workflow.defn(name="LedgerProbe", sandboxed=False)
class LedgerProbeWorkflow:
    """Calls ledger.place_hold as a workflow would: once, again with the same key, then bad
    calls."""

    @workflow.run
    async def run(self, req: PlaceHoldInput) -> ProbeResult:
        """Run the calls and report what came back."""
        first = await self._hold(req)
        retried = await self._hold(req)
        rejections: list[str] = []
        retry_states: list[str] = []
        for bad in (
            req.model_copy(update={"amount": req.amount + 1}),  # same key, other content
            req.model_copy(update={"idempotency_key": "too-much", "amount": 10**9}),
        ):
            try:
                await self._hold(bad)
            except ActivityError as err:
                cause = err.cause
                rejections.append(cause.type or "" if isinstance(cause, ApplicationError) else "")
                retry_states.append(err.retry_state.name if err.retry_state else "")
        return ProbeResult(
            first=first, retried=retried, rejections=rejections, retry_states=retry_states
        )

    async def _hold(self, req: PlaceHoldInput) -> PlacedHold:
        result: PlacedHold = await workflow.execute_activity(
            "ledger.place_hold",
            req,
            result_type=PlacedHold,
            start_to_close_timeout=timedelta(seconds=20),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        return result


async def test_hold_activity_replays_and_rejects_without_retrying(
    settings: Settings, temporal_client: Client, sessions: SessionFactory
) -> None:
    owner = await new_user(sessions)
    a = await funded_account(sessions, owner, 10_000, name="A")
    req = PlaceHoldInput(
        idempotency_key=f"payment-{uuid.uuid4()}:hold", account_id=a, amount=1_234, currency="EUR"
    )
    deps = WorkerDeps(settings=settings, sessions=sessions, email=MemoryEmailBackend())
    queue = f"{settings.task_queue}-ledger-probe"

    async with Worker(
        temporal_client,
        task_queue=queue,
        workflows=[LedgerProbeWorkflow],
        activities=main_activities(deps),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await temporal_client.execute_workflow(
            LedgerProbeWorkflow.run, req, id=f"ledger-probe-{uuid.uuid4()}", task_queue=queue
        )

    assert result.retried == result.first
    assert result.first.amount == 1_234
    assert result.rejections == [ledger.IDEMPOTENCY_KEY_REUSED, ledger.INSUFFICIENT_FUNDS]
    # Temporal did not retry the business rejections.
    assert result.retry_states == [RetryState.NON_RETRYABLE_FAILURE.name] * 2
    assert await balances(sessions, a) == [(10_000, 1_234)]
    await assert_ledger_ok(sessions)
