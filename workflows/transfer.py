"""TransferWorkflow: an internal transfer, optionally scheduled for later and cancellable
until it runs; risk check, then one ledger entry that records both customers' transactions.

Every step is a short PostgreSQL transaction, so all of them run as local activities: their
results are recorded as markers, retried by the same policy, and a transfer costs one workflow
task instead of three plus an activity task (decision 18). Histories from before that change
(regular activities) still replay through the `LOCAL_DB_STEPS` patch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.payments import PaymentActivities, transfer_key
    from models.ledger.payloads import LedgerTransferInput
    from models.payments.payloads import (
        PaymentState,
        RiskInput,
        SetPaymentStatusInput,
        TransferInput,
    )
    from models.payments.tables import PaymentStatus
    from temporal.activity_options import db_step
    from temporal.errors import non_retryable
    from temporal.status import publish_status

LOCAL_DB_STEPS = "transfer-local-db-steps"
LOCAL_REJECTION = "transfer-local-rejection-fails-payment"
ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")


@workflow.defn(name="TransferWorkflow")
class TransferWorkflow:
    """Moves money between two customer accounts exactly once."""

    @workflow.init
    def __init__(self, inp: TransferInput) -> None:
        self._inp = inp
        initial = PaymentStatus.SCHEDULED if inp.execute_at else PaymentStatus.PROCESSING
        self._state = PaymentState(
            payment_id=inp.payment_id, status=initial, execute_at=inp.execute_at
        )
        self._cancel_requested = False
        # A crashed worker's activity is retried after this; a setting, so tests can shorten it.
        self._db_options = db_step(inp.activity_timeout_seconds)

    @workflow.run
    async def run(self, inp: TransferInput) -> PaymentState:
        """Wait for `execute_at` (cancellable), assess risk, post the transfer."""
        if inp.execute_at is not None:
            delay = max(inp.execute_at - workflow.now(), timedelta(0))
            with contextlib.suppress(TimeoutError):  # the timer ran out: time to execute
                await workflow.wait_condition(lambda: self._cancel_requested, timeout=delay)
            if self._cancel_requested:
                return await self._finish(PaymentStatus.CANCELLED, "cancelled by the customer")
            await self._record(PaymentStatus.PROCESSING)
        # Local since before LOCAL_DB_STEPS: a quick read-only check, no server round trip.
        risk = await self._local(
            PaymentActivities.assess_risk,
            RiskInput(
                payment_id=inp.payment_id,
                user_id=inp.user_id,
                amount=inp.amount,
                currency=inp.currency,
            ),
        )
        if risk.decision == "deny":
            return await self._finish(PaymentStatus.REJECTED, f"risk: {risk.reason}")
        try:
            posted = await self._db_step(
                PaymentActivities.post_transfer,
                LedgerTransferInput(
                    idempotency_key=transfer_key(inp.payment_id),
                    from_account_id=inp.from_account_id,
                    to_account_id=inp.to_account_id,
                    amount=inp.amount,
                    currency=inp.currency,
                    description=inp.description,
                    owner_user_id=inp.user_id,
                ),
            )
        except (ActivityError, ApplicationError) as exc:
            # A local activity's rejection arrives as the bare ApplicationError: before this
            # patch it failed the workflow and left the row `processing` (e.g. an account
            # closed before a scheduled transfer ran).
            rejected = isinstance(exc, ActivityError) or workflow.patched(LOCAL_REJECTION)
            if rejected and (rejection := non_retryable(exc)) is not None:
                return await self._finish(
                    PaymentStatus.FAILED, f"{rejection.type}: {rejection.message}"
                )
            raise
        self._state.status = PaymentStatus.COMPLETED  # recorded by post_transfer itself
        self._state.completed_at = posted.completed_at
        self._publish()
        return self._state

    @workflow.query
    def status(self) -> PaymentState:
        """Current state of the transfer."""
        return self._state

    @workflow.update
    def cancel(self) -> PaymentState:
        """Cancel a scheduled transfer before it runs."""
        self._cancel_requested = True
        return self._state

    @cancel.validator
    def _validate_cancel(self) -> None:
        if self._state.status != PaymentStatus.SCHEDULED or self._cancel_requested:
            raise ApplicationError(
                f"transfer is {self._state.status.value}; only a scheduled one can be cancelled",
                type="NotCancellable",
            )

    async def _record(self, status: PaymentStatus, reason: str | None = None) -> None:
        self._state.status, self._state.failure_reason = status, reason
        self._publish()
        await self._db_step(
            PaymentActivities.set_status,
            SetPaymentStatusInput(
                payment_id=self._inp.payment_id, status=status, failure_reason=reason
            ),
        )

    async def _db_step(
        self,
        method: Callable[[Any, ArgT], Awaitable[ResultT]],
        arg: ArgT,
    ) -> ResultT:
        """Run one idempotent DB activity: local once patched, as a regular one in old runs."""
        if workflow.patched(LOCAL_DB_STEPS):
            return await self._local(method, arg)
        return await workflow.execute_activity_method(method, arg, **self._db_options)

    async def _local(self, method: Callable[[Any, ArgT], Awaitable[ResultT]], arg: ArgT) -> ResultT:
        return await workflow.execute_local_activity_method(method, arg, **self._db_options)

    async def _finish(self, status: PaymentStatus, reason: str | None) -> PaymentState:
        await self._record(status, reason)
        return self._state

    def _publish(self) -> None:
        publish_status(self._state.status.value)
