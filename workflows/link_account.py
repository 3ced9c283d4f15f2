"""LinkAccountWorkflow: two micro-deposits to an external account, then the customer confirms the
two amounts through the `confirm` update (limited attempts) before a deadline of days.

pending_confirmation -> linked | failed (wrong amounts too often, deposits refused or returned)
| expired. The amounts never enter the history: activities derive them from a keyed HMAC of the
link id, and `confirm` carries a keyed digest of the customer's answer computed by the API.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.linking import MICRO_DEPOSIT_REFUSED, LinkingActivities
    from activities.providers.rail import NON_RETRYABLE_RAIL_ERRORS
    from models.linking.payloads import (
        CheckAmountsInput,
        ConfirmLinkInput,
        LinkAccountInput,
        LinkState,
        MicroDepositsInput,
        SetLinkStatusInput,
    )
    from models.linking.tables import LinkStatus
    from temporal.activity_options import EXTERNAL_ACTIVITY_TIMEOUT, db_step
    from temporal.errors import failure_type
    from temporal.status import publish_status

_TERMINAL = frozenset({LinkStatus.LINKED, LinkStatus.FAILED, LinkStatus.EXPIRED})
RAIL_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=list(NON_RETRYABLE_RAIL_ERRORS),
)
# Settlement is polled by retrying the activity while it reports "still pending".
SETTLEMENT_POLL = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)


@workflow.defn(name="LinkAccountWorkflow")
class LinkAccountWorkflow:
    """Verifies that the customer controls an external account, or expires."""

    @workflow.init
    def __init__(self, inp: LinkAccountInput) -> None:
        self._inp = inp
        self._state = LinkState(
            linked_account_id=inp.linked_account_id,
            status=LinkStatus.PENDING_CONFIRMATION,
            attempts_left=inp.max_attempts,
        )
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, inp: LinkAccountInput) -> LinkState:
        """Send the deposits, wait for a confirmation or the deadline, reconcile the deposits."""
        self._state.expires_at = workflow.now() + timedelta(seconds=inp.confirmation_seconds)
        self._publish()
        try:
            await workflow.execute_activity_method(
                LinkingActivities.send_micro_deposits,
                self._deposits_input(),
                task_queue=inp.external_task_queue,
                start_to_close_timeout=EXTERNAL_ACTIVITY_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=inp.confirmation_seconds),
                heartbeat_timeout=RAIL_HEARTBEAT_TIMEOUT,
                retry_policy=SEND_RETRY,
            )
        except ActivityError as exc:
            refused = failure_type(exc) == MICRO_DEPOSIT_REFUSED
            reason = "the rail refused the micro-deposits" if refused else "could not send"
            await self._set(LinkStatus.FAILED, reason)
            await self._reconcile()
            return self._state
        self._state.deposits = "in_transit"
        reconciliation = asyncio.create_task(self._reconcile())
        try:
            await workflow.wait_condition(
                lambda: self._state.status in _TERMINAL, timeout=self._time_left()
            )
        except TimeoutError:
            await workflow.wait_condition(lambda: not self._lock.locked())
            if self._state.status not in _TERMINAL:
                await self._set(LinkStatus.EXPIRED, "not confirmed in time")
        await reconciliation
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.query
    def status(self) -> LinkState:
        """Current state of the link."""
        return self._state

    @workflow.update
    async def confirm(self, req: ConfirmLinkInput) -> LinkState:
        """Check the two amounts; a wrong answer costs an attempt, the last one fails the link."""
        async with self._lock:
            self._require_confirmable()
            check = await workflow.execute_activity_method(
                LinkingActivities.check_amounts,
                CheckAmountsInput(
                    linked_account_id=self._inp.linked_account_id,
                    amounts_digest=req.amounts_digest,
                ),
                **db_step(self._inp.activity_timeout_seconds),
            )
            if check.matches:
                await self._set(LinkStatus.LINKED, None)
                return self._state
            self._state.attempts_left -= 1
            if self._state.attempts_left <= 0:
                await self._set(LinkStatus.FAILED, "too many wrong amounts")
                raise ApplicationError(
                    "too many wrong amounts; the link failed",
                    {"attempts_left": 0},
                    type="TooManyAttempts",
                )
            raise ApplicationError(
                "the amounts do not match the micro-deposits",
                {"attempts_left": self._state.attempts_left},
                type="WrongAmounts",
            )

    @confirm.validator
    def _validate_confirm(self, req: ConfirmLinkInput) -> None:
        self._require_confirmable()

    def _require_confirmable(self) -> None:
        status = self._state.status
        expires_at = self._state.expires_at
        expired = expires_at is not None and workflow.now() >= expires_at
        if status == LinkStatus.PENDING_CONFIRMATION and expired:
            status = LinkStatus.EXPIRED
        if status != LinkStatus.PENDING_CONFIRMATION:
            raise ApplicationError(
                f"the link is {status.value}",
                {"link_status": status.value},
                type="InvalidLinkState",
                non_retryable=True,
            )
        if self._state.deposits == "sending":
            raise ApplicationError(
                "the micro-deposits are still being sent; try again shortly",
                type="DepositsNotSent",
                non_retryable=True,
            )

    async def _reconcile(self) -> None:
        """Wait until both deposits are final at the rail; a returned one fails the link."""
        try:
            outcome = await workflow.execute_activity_method(
                LinkingActivities.settle_micro_deposits,
                self._deposits_input(),
                task_queue=self._inp.external_task_queue,
                start_to_close_timeout=EXTERNAL_ACTIVITY_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=self._inp.settlement_timeout_seconds),
                retry_policy=SETTLEMENT_POLL,
            )
        except ActivityError:
            workflow.logger.warning("micro-deposits not final in time; left for ops")
            self._state.deposits = "unknown"
            return
        if outcome.returned == 0 and outcome.not_sent == 0:
            self._state.deposits = "settled"
            return
        self._state.deposits = "returned" if outcome.returned else "not_sent"
        async with self._lock:  # a link confirmed before a late return stays linked
            if self._state.status not in _TERMINAL:
                await self._set(LinkStatus.FAILED, f"micro-deposit returned: {outcome.reason}")

    async def _set(self, status: LinkStatus, reason: str | None) -> None:
        await workflow.execute_activity_method(
            LinkingActivities.set_status,
            SetLinkStatusInput(linked_account_id=self._inp.linked_account_id, status=status),
            **db_step(self._inp.activity_timeout_seconds),
        )
        self._state.status, self._state.failure_reason = status, reason
        self._publish()

    def _deposits_input(self) -> MicroDepositsInput:
        return MicroDepositsInput(
            linked_account_id=self._inp.linked_account_id, currency=self._inp.currency
        )

    def _publish(self) -> None:
        publish_status(self._state.status.value)

    def _time_left(self) -> timedelta:
        assert self._state.expires_at is not None
        return max(self._state.expires_at - workflow.now(), timedelta(0))
