"""ExternalPaymentWorkflow: money out to a beneficiary's bank account through the payment rail.

    risk check -> (review: customer approval by TOTP through the API, within a deadline)
    -> hold on the source account -> submit to the rail (external queue, bounded retries with
    backoff) -> `submitted` -> outcome from the `rail_event` signal (webhook) or from polling
    the rail with backoff, whichever comes first -> capture the hold (settled) or release it.

When the submit retries are exhausted the payment waits in `requires_action` until a person
sends `ops_retry` (submit again) or cancels (`ops_cancel` signal or the `cancel` update). The
`cancel` update answers only once the cancellation is settled: it is refused when the rail has
already settled or rejected the payment, or when the rail cannot be reached to confirm that the
money did not leave. Every status change is upserted to the search attributes and written to
the `payments` row. Nothing secret enters the history: the TOTP code is checked by the API,
which sends only `approve(approved=True)`.

Interface (names are part of the ops runbook):
- query `status` -> PaymentState
- update `approve(ApprovalDecision)` -> PaymentState (only while `pending_approval`)
- update `cancel()` -> PaymentState (ApplicationError type `NotCancellable` when refused)
- signal `rail_event(RailPaymentSnapshot)` (from the webhook route)
- signals `ops_retry` and `ops_cancel` (no arguments; `temporal workflow signal --name ...`)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Final

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.ledger.activities import LedgerActivities
    from activities.payments import PaymentActivities
    from activities.providers.rail import NON_RETRYABLE_RAIL_ERRORS, RailRejectedError
    from activities.rail_payments import RailActivities
    from models.ledger.payloads import CaptureHoldInput, PlaceHoldInput, ReleaseHoldInput
    from models.payments.payloads import (
        ApprovalDecision,
        ExternalPaymentInput,
        PaymentState,
        RailCancelInput,
        RailLookup,
        RailPaymentSnapshot,
        RailStatusInput,
        RailSubmitInput,
        RiskInput,
        SetPaymentStatusInput,
    )
    from models.payments.tables import PaymentStatus
    from temporal.activity_options import EXTERNAL_ACTIVITY_TIMEOUT, db_step
    from temporal.errors import non_retryable
    from temporal.status import publish_status

NOT_CANCELLABLE: Final = "NotCancellable"
NOT_AWAITING_APPROVAL: Final = "NotAwaitingApproval"
RAIL_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
RAIL_LOOKUP_ATTEMPTS = 3
_FINISHED: Final = "finished"  # _submit(): the payment reached a terminal status
_INTERRUPTED: Final = "interrupted"  # _submit(): a cancellation or the rail's outcome came first
HOLD_DEADLINE_PATCH: Final = "requires-action-hold-deadline"


@workflow.defn(name="ExternalPaymentWorkflow")
class ExternalPaymentWorkflow:
    """Pays a saved beneficiary through the rail exactly once, or releases the money."""

    @workflow.init
    def __init__(self, inp: ExternalPaymentInput) -> None:
        self._inp = inp
        self._db_options = db_step(inp.activity_timeout_seconds)
        self._state = PaymentState(payment_id=inp.payment_id, status=PaymentStatus.PROCESSING)
        self._awaiting_approval = False
        self._approval: bool | None = None
        self._approval_recorded = False  # the decision's status is in the payments row
        self._cancel_requested = False
        self._cancelled_by = "the customer"
        self._cancel_refusal: str | None = None
        self._retry_requested = False
        self._outcome: RailPaymentSnapshot | None = None
        self._hold_id: uuid.UUID | None = None
        self._hold_expires_at: datetime | None = None
        self._submit_started = False

    @workflow.run
    async def run(self, inp: ExternalPaymentInput) -> PaymentState:
        """Risk, approval, hold, submit, outcome; returns the final state."""
        self._publish()
        await self._process()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    # --- interface ----------------------------------------------------------------------

    @workflow.query
    def status(self) -> PaymentState:
        """Current state of the payment."""
        return self._state

    @workflow.update
    async def approve(self, decision: ApprovalDecision) -> PaymentState:
        """The customer's decision (TOTP already verified by the API); answers the new state
        once it is recorded."""
        self._approval = decision.approved
        await workflow.wait_condition(lambda: self._approval_recorded)
        return self._state

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        if not self._awaiting_approval or self._approval is not None or self._cancel_requested:
            raise ApplicationError(
                f"payment is {self._state.status.value}, not awaiting approval",
                type=NOT_AWAITING_APPROVAL,
            )

    @workflow.update
    async def cancel(self) -> PaymentState:
        """Cancel (at the rail too if submitted); answers once cancelled, or refuses."""
        self._cancel_requested, self._cancel_refusal = True, None
        self._cancelled_by = "the customer"
        await workflow.wait_condition(
            lambda: self._state.status.is_terminal or self._cancel_refusal is not None
        )
        if self._state.status != PaymentStatus.CANCELLED:
            reason = self._cancel_refusal or f"payment is {self._state.status.value}"
            raise ApplicationError(reason, type=NOT_CANCELLABLE)
        return self._state

    @cancel.validator
    def _validate_cancel(self) -> None:
        if self._state.status.is_terminal:
            raise ApplicationError(
                f"payment is already {self._state.status.value}", type=NOT_CANCELLABLE
            )
        if self._outcome is not None and self._outcome.status != "cancelled":
            raise ApplicationError(
                f"the payment has already been {self._outcome.status} by the rail",
                type=NOT_CANCELLABLE,
            )
        if self._cancel_requested:
            raise ApplicationError("a cancellation is already in progress", type=NOT_CANCELLABLE)

    @workflow.signal(name="rail_event")
    def rail_event(self, event: RailPaymentSnapshot) -> None:
        """The rail's final word on the payment (webhook relayed by the API); first one wins."""
        if self._outcome is None and event.is_final and self._is_ours(event):
            self._outcome = event

    @workflow.signal(name="ops_retry")
    def ops_retry(self) -> None:
        """Submit again a payment waiting in `requires_action` (ops or the customer)."""
        if self._state.status == PaymentStatus.REQUIRES_ACTION:
            self._retry_requested = True
        else:
            workflow.logger.info("ops_retry ignored: payment is %s", self._state.status.value)

    @workflow.signal(name="ops_cancel")
    def ops_cancel(self) -> None:
        """Cancel from ops (same rules as the `cancel` update, but nobody waits for the answer)."""
        if self._state.status.is_terminal or self._cancel_requested:
            workflow.logger.info("ops_cancel ignored: payment is %s", self._state.status.value)
            return
        self._cancel_requested, self._cancel_refusal = True, None
        self._cancelled_by = "ops"

    # --- the process --------------------------------------------------------------------

    async def _process(self) -> None:
        inp = self._inp
        risk = await workflow.execute_activity_method(
            PaymentActivities.assess_risk,
            RiskInput(
                payment_id=inp.payment_id,
                user_id=inp.user_id,
                amount=inp.amount,
                currency=inp.currency,
            ),
            **self._db_options,
        )
        if risk.decision == "deny":
            return await self._finish(PaymentStatus.REJECTED, f"risk: {risk.reason}")
        if risk.decision == "review" and not await self._approved():
            return None
        if self._cancel_requested:
            return await self._finish(PaymentStatus.CANCELLED, self._cancel_reason())
        if not await self._place_hold():
            return None
        return await self._send()

    async def _approved(self) -> bool:
        """Wait for the customer's approval; False when the payment ended meanwhile."""
        timeout = timedelta(seconds=self._inp.approval_timeout_seconds)
        self._state.approval_expires_at = workflow.now() + timeout
        self._awaiting_approval = True
        await self._record(PaymentStatus.PENDING_APPROVAL)
        with contextlib.suppress(TimeoutError):  # decided below from the flags, not the timer
            await workflow.wait_condition(
                lambda: self._approval is not None or self._cancel_requested, timeout=timeout
            )
        self._awaiting_approval = False
        self._state.approval_expires_at = None
        approved = False
        if self._cancel_requested:
            await self._finish(PaymentStatus.CANCELLED, self._cancel_reason())
        elif self._approval is None:
            await self._finish(PaymentStatus.CANCELLED, "not approved before the deadline")
        elif not self._approval:
            await self._finish(PaymentStatus.CANCELLED, "declined by the customer")
        else:
            await self._record(PaymentStatus.PROCESSING)
            approved = True
        self._approval_recorded = True
        return approved

    async def _place_hold(self) -> bool:
        inp = self._inp
        try:
            hold = await workflow.execute_activity_method(
                LedgerActivities.place_hold,
                PlaceHoldInput(
                    idempotency_key=f"payment:{inp.payment_id}:hold",
                    account_id=inp.from_account_id,
                    amount=inp.amount,
                    currency=inp.currency,
                    kind="external_payment",
                    description=inp.description or f"Payment to {inp.creditor_name}",
                    merchant=inp.creditor_name,
                    ttl_seconds=inp.hold_ttl_seconds,
                    owner_user_id=inp.user_id,
                ),
                **self._db_options,
            )
        except ActivityError as exc:
            if (cause := non_retryable(exc)) is None:
                raise
            await self._finish(PaymentStatus.FAILED, f"{cause.type}: {cause.message}")
            return False
        self._hold_id, self._hold_expires_at = hold.hold_id, hold.expires_at
        return True

    async def _send(self) -> None:
        """Submit until the rail accepts, waiting for a person when the retries run out."""
        while True:
            if self._outcome is not None:  # the rail answered although the submit did not
                return await self._conclude(self._outcome)
            if self._cancel_requested and await self._cancel_unsubmitted():
                return None
            if self._state.status == PaymentStatus.REQUIRES_ACTION:
                await self._wait_for_a_person()
                if self._outcome is not None or self._cancel_requested:
                    continue
                self._retry_requested = False
                await self._record(PaymentStatus.PROCESSING)
            result = await self._submit()
            if isinstance(result, RailPaymentSnapshot):
                break
            if result == _FINISHED:
                return None
            if result != _INTERRUPTED:  # retries exhausted: `result` says why
                await self._record(PaymentStatus.REQUIRES_ACTION, result)
        if (why := result.disagreement(None, self._inp.amount, self._inp.currency)) is not None:
            await self._release()  # our instruction never reached the rail: nothing was sent
            return await self._finish(
                PaymentStatus.FAILED, f"the rail holds another payment under our reference: {why}"
            )
        self._state.rail_payment_id = result.rail_payment_id
        if result.is_final and self._outcome is None:
            self._outcome = result
        await self._record(PaymentStatus.SUBMITTED)
        return await self._await_outcome(result.rail_payment_id)

    async def _submit(self) -> RailPaymentSnapshot | str:
        """One submit with bounded retries; the snapshot, or _FINISHED / _INTERRUPTED / why."""
        inp = self._inp
        self._submit_started = True
        handle = workflow.start_activity_method(
            RailActivities.submit,
            RailSubmitInput(
                reference=str(inp.payment_id),
                amount=inp.amount,
                currency=inp.currency,
                creditor_name=inp.creditor_name,
                creditor_iban=inp.creditor_iban,
                debtor_account=inp.debtor_account,
            ),
            task_queue=inp.rail_task_queue,
            start_to_close_timeout=EXTERNAL_ACTIVITY_TIMEOUT,
            heartbeat_timeout=RAIL_HEARTBEAT_TIMEOUT,
            retry_policy=self._rail_retry(inp.submit_max_attempts),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(
            lambda: handle.done() or self._cancel_requested or self._outcome is not None
        )
        if not handle.done():
            handle.cancel()
        try:
            return await handle
        except asyncio.CancelledError:
            if not handle.cancelled():
                raise
            return _INTERRUPTED
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                return _INTERRUPTED
            cause = non_retryable(exc)
            if cause is not None and cause.type in NON_RETRYABLE_RAIL_ERRORS:
                await self._release()
                status = (
                    PaymentStatus.REJECTED
                    if cause.type == RailRejectedError.__name__
                    else PaymentStatus.FAILED
                )
                await self._finish(status, f"the rail refused the payment: {cause.message}")
                return _FINISHED
            detail = str(exc.cause) if exc.cause is not None else str(exc)
            return (
                f"the rail could not be reached ({inp.submit_max_attempts} attempts): {detail}"
            )[:500]

    async def _await_outcome(self, rail_payment_id: str) -> None:
        """Wait for the webhook, polling the rail with backoff meanwhile; handle cancels."""
        interval = self._inp.poll_interval_seconds
        while True:
            if self._outcome is not None:
                return await self._conclude(self._outcome)
            if self._cancel_requested:
                if await self._cancel_at_rail(rail_payment_id):
                    return None
                continue
            try:
                await workflow.wait_condition(
                    lambda: self._outcome is not None or self._cancel_requested,
                    timeout=timedelta(seconds=interval),
                )
            except TimeoutError:
                lookup = await self._rail_lookup()
                found = lookup.payment if lookup is not None else None
                if (
                    found is not None
                    and found.is_final
                    and self._outcome is None
                    and self._is_ours(found)
                ):
                    self._outcome = found
                interval = min(interval * 2, self._inp.poll_max_interval_seconds)

    async def _cancel_unsubmitted(self) -> bool:
        """Cancel before the rail accepted the payment; False when the cancel was refused."""
        if not self._submit_started:
            await self._release()
            await self._finish(PaymentStatus.CANCELLED, self._cancel_reason())
            return True
        # A submit was attempted: the rail may have the payment even though we have no answer.
        lookup = await self._rail_lookup()
        if lookup is None:
            self._refuse_cancel(
                "the rail cannot be reached to make sure the payment was not sent; try again"
            )
            return False
        if lookup.payment is None or not self._is_ours(lookup.payment):
            await self._release()
            await self._finish(PaymentStatus.CANCELLED, self._cancel_reason())
            return True
        self._state.rail_payment_id = lookup.payment.rail_payment_id
        if lookup.payment.status == "pending":
            return await self._cancel_at_rail(lookup.payment.rail_payment_id)
        await self._conclude(lookup.payment)
        return True

    async def _cancel_at_rail(self, rail_payment_id: str) -> bool:
        """Cancel a payment the rail has; False when refused (it stays as it was)."""
        try:
            answer = await workflow.execute_activity_method(
                RailActivities.cancel,
                RailCancelInput(
                    rail_payment_id=rail_payment_id, reference=str(self._inp.payment_id)
                ),
                task_queue=self._inp.rail_task_queue,
                start_to_close_timeout=EXTERNAL_ACTIVITY_TIMEOUT,
                heartbeat_timeout=RAIL_HEARTBEAT_TIMEOUT,
                retry_policy=self._rail_retry(self._inp.submit_max_attempts),
            )
        except ActivityError:
            self._refuse_cancel("the rail could not be reached to cancel the payment; try again")
            return False
        found = answer.payment
        if found is None or found.status == "pending":
            self._refuse_cancel("the rail did not confirm the cancellation; try again")
            return False
        await self._conclude(found)
        return True

    async def _conclude(self, outcome: RailPaymentSnapshot) -> None:
        """Settled -> capture; rejected -> release; cancelled at the rail -> release."""
        self._outcome = outcome
        self._state.rail_payment_id = self._state.rail_payment_id or outcome.rail_payment_id
        if self._cancel_requested and outcome.status != "cancelled":
            self._refuse_cancel(f"the payment has already been {outcome.status} by the rail")
        if outcome.status == "settled":
            assert self._hold_id is not None
            try:
                await workflow.execute_activity_method(
                    LedgerActivities.capture_hold,
                    CaptureHoldInput(hold_id=self._hold_id, owner_user_id=self._inp.user_id),
                    **self._db_options,
                )
            except ActivityError as exc:
                if (cause := non_retryable(exc)) is None:
                    raise
                return await self._finish(
                    PaymentStatus.FAILED,
                    f"settled at the rail but the hold could not be captured "
                    f"({cause.type}: {cause.message}); needs reconciliation",
                )
            return await self._finish(PaymentStatus.COMPLETED, None)
        await self._release()
        if outcome.status == "rejected":
            reason = f"rejected by the rail: {outcome.reason or 'no reason given'}"
            return await self._finish(PaymentStatus.REJECTED, reason)
        reason = self._cancel_reason() if self._cancel_requested else "cancelled at the rail"
        return await self._finish(PaymentStatus.CANCELLED, reason)

    async def _wait_for_a_person(self) -> None:
        """Wait in requires_action for retry, cancel or the rail's word; shortly before the hold
        would expire, cancel (submitting on a lapsing hold could send money we cannot capture)."""
        if not workflow.patched(HOLD_DEADLINE_PATCH) or self._hold_expires_at is None:
            await workflow.wait_condition(self._someone_acted)
            return
        margin = timedelta(seconds=self._inp.hold_margin_seconds)
        left = self._hold_expires_at - margin - workflow.now()
        # Past the deadline (a cancel refused while the rail was unreachable): try again later.
        wait = left if left > timedelta(0) else timedelta(seconds=self._inp.poll_interval_seconds)
        try:
            await workflow.wait_condition(self._someone_acted, timeout=wait)
        except TimeoutError:
            self._cancel_requested, self._cancelled_by = (
                True,
                "the bank: its hold was due to expire",
            )

    # --- helpers ------------------------------------------------------------------------

    def _someone_acted(self) -> bool:
        return self._retry_requested or self._cancel_requested or self._outcome is not None

    def _is_ours(self, report: RailPaymentSnapshot) -> bool:
        """A rail report counts only if it is about what we submitted (id, amount, currency):
        anything else under our reference must never capture or release our hold."""
        why = report.disagreement(self._state.rail_payment_id, self._inp.amount, self._inp.currency)
        if why is not None:
            workflow.logger.warning("rail report ignored, not this payment: %s", why)
        return why is None

    def _rail_retry(self, attempts: int) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._inp.submit_initial_interval_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=1),
            maximum_attempts=attempts,
            non_retryable_error_types=list(NON_RETRYABLE_RAIL_ERRORS),
        )

    async def _rail_lookup(self) -> RailLookup | None:
        """The rail's view of our reference; None when it cannot be reached."""
        try:
            return await workflow.execute_activity_method(
                RailActivities.status,
                RailStatusInput(reference=str(self._inp.payment_id)),
                task_queue=self._inp.rail_task_queue,
                start_to_close_timeout=EXTERNAL_ACTIVITY_TIMEOUT,
                heartbeat_timeout=RAIL_HEARTBEAT_TIMEOUT,
                retry_policy=self._rail_retry(RAIL_LOOKUP_ATTEMPTS),
            )
        except ActivityError:
            return None

    async def _release(self) -> None:
        if self._hold_id is None:
            return
        try:
            await workflow.execute_activity_method(
                LedgerActivities.release_hold,
                ReleaseHoldInput(hold_id=self._hold_id, owner_user_id=self._inp.user_id),
                **self._db_options,
            )
        except ActivityError as exc:
            if (cause := non_retryable(exc)) is None:
                raise
            # Already expired: the money is not held any more, which is what we wanted.
            workflow.logger.warning("hold not released: %s: %s", cause.type, cause.message)

    def _cancel_reason(self) -> str:
        return f"cancelled by {self._cancelled_by}"

    def _refuse_cancel(self, reason: str) -> None:
        self._cancel_requested, self._cancel_refusal = False, reason
        self._state.failure_reason = f"cancel refused: {reason}"  # visible to the status query

    async def _record(self, status: PaymentStatus, reason: str | None = None) -> None:
        self._state.status, self._state.failure_reason = status, reason
        self._publish()
        await workflow.execute_activity_method(
            PaymentActivities.set_status,
            SetPaymentStatusInput(
                payment_id=self._inp.payment_id,
                status=status,
                failure_reason=reason,
                rail_payment_id=self._state.rail_payment_id,
            ),
            **self._db_options,
        )

    async def _finish(self, status: PaymentStatus, reason: str | None) -> None:
        await self._record(status, reason)

    def _publish(self) -> None:
        inp, state = self._inp, self._state
        publish_status(
            state.status.value,
            user_id=inp.user_id,
            amount=inp.amount,
            currency=inp.currency,
        )
        details = state.status.value
        if state.failure_reason:
            details += f": {state.failure_reason}"
        workflow.set_current_details(details)
