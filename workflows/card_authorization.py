"""CardAuthorizationWorkflow: a card authorisation as a two-phase hold, as a processor does it.

authorize -> hold placed (or declined: the ledger's reason) -> wait for the processor:
- `clear(amount)`: capture up to the authorised amount, the rest is released;
- `reverse`: release the hold;
- nothing until `expires_at`: release the hold (the authorisation lapsed).

Each step is one idempotent ledger activity keyed by the hold, so a retried activity, a
redelivered event or a second workflow run under the same id all land on the same hold.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.ledger.activities import LedgerActivities
    from models.ledger.payloads import CaptureHoldInput, PlaceHoldInput, ReleaseHoldInput
    from models.transactions.payloads import (
        CardAuthorizationInput,
        CardAuthorizationState,
        CardClearingInput,
    )
    from temporal.activity_options import db_step
    from temporal.errors import non_retryable
    from temporal.status import publish_status

AUTHORIZATION_CLOSED = "AuthorizationClosed"  # a clear or reverse after the authorisation ended


def hold_key(inp: CardAuthorizationInput) -> str:
    """The ledger idempotency key of an authorisation's hold."""
    return f"card-auth:{inp.account_id}:{inp.authorization_id}"


@workflow.defn(name="CardAuthorizationWorkflow")
class CardAuthorizationWorkflow:
    """Holds a card authorisation's amount until the processor clears or reverses it."""

    @workflow.init
    def __init__(self, inp: CardAuthorizationInput) -> None:
        self._inp = inp
        self._state = CardAuthorizationState(status="authorizing", authorized_amount=inp.amount)
        self._clearing: CardClearingInput | None = None
        self._reverse = False
        self._db = db_step(inp.activity_timeout_seconds)

    @workflow.run
    async def run(self, inp: CardAuthorizationInput) -> CardAuthorizationState:
        """Place the hold, then capture, release or let it lapse."""
        self._publish()
        if not await self._place_hold():
            return self._state
        try:
            await workflow.wait_condition(
                lambda: self._clearing is not None or self._reverse,
                timeout=max(inp.expires_at - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            await self._release("expired")
            return self._state
        if self._clearing is not None:
            await self._capture(self._clearing)
        else:
            await self._release("reversed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.query
    def status(self) -> CardAuthorizationState:
        """Where the authorisation stands."""
        return self._state

    @workflow.update
    async def authorize(self) -> CardAuthorizationState:
        """The decision: `authorized` (hold placed) or `declined`, once the hold step is done."""
        await workflow.wait_condition(lambda: self._state.status != "authorizing")
        return self._state

    @workflow.update
    async def clear(self, clearing: CardClearingInput) -> CardAuthorizationState:
        """Capture the cleared amount; the same clearing again answers the same result."""
        if self._clearing is None:
            self._clearing = clearing
        await workflow.wait_condition(lambda: self._state.status != "authorized")
        return self._state

    @clear.validator
    def _validate_clear(self, clearing: CardClearingInput) -> None:
        if self._clearing is not None and self._clearing.clearing_id == clearing.clearing_id:
            return  # a redelivery of the clearing being (or already) captured
        if self._state.status != "authorized" or self._clearing or self._reverse:
            raise ApplicationError(
                f"the authorisation is {self._state.status}", type=AUTHORIZATION_CLOSED
            )
        if not 0 < clearing.amount <= self._inp.amount:
            raise ApplicationError(
                "a clearing must be more than zero and at most the authorised amount",
                {"authorized_minor": self._inp.amount},
                type="InvalidAmount",
            )

    @workflow.update
    async def reverse(self) -> CardAuthorizationState:
        """Release the hold; a second reversal answers the same result."""
        self._reverse = True
        await workflow.wait_condition(lambda: self._state.status != "authorized")
        return self._state

    @reverse.validator
    def _validate_reverse(self) -> None:
        if self._reverse and self._clearing is None:
            return  # a redelivered reversal
        if self._state.status != "authorized" or self._clearing is not None:
            raise ApplicationError(
                f"the authorisation is {self._state.status}", type=AUTHORIZATION_CLOSED
            )

    async def _place_hold(self) -> bool:
        inp = self._inp
        try:
            held = await workflow.execute_activity_method(
                LedgerActivities.place_hold,
                PlaceHoldInput(
                    idempotency_key=hold_key(inp),
                    account_id=inp.account_id,
                    amount=inp.amount,
                    currency=inp.currency,
                    kind="card",
                    description=inp.description,
                    merchant=inp.merchant,
                    expires_at=inp.expires_at,
                ),
                **self._db,
            )
        except ActivityError as exc:
            if (rejection := non_retryable(exc)) is None:
                raise
            self._state.status, self._state.reason = "declined", rejection.type
            self._publish()
            return False
        self._state.status, self._state.hold_id = "authorized", held.hold_id
        self._state.transaction_id = held.transaction_id
        self._publish()
        return True

    async def _capture(self, clearing: CardClearingInput) -> None:
        assert self._state.hold_id is not None
        try:
            resolved = await workflow.execute_activity_method(
                LedgerActivities.capture_hold,
                CaptureHoldInput(hold_id=self._state.hold_id, amount=clearing.amount),
                **self._db,
            )
        except ActivityError as exc:
            if (rejection := non_retryable(exc)) is None:
                raise
            # e.g. the hold lapsed in the ledger first: nothing was captured.
            self._state.reason = rejection.type
            await self._release("expired")
            return
        self._state.status, self._state.clearing_id = "cleared", clearing.clearing_id
        self._state.captured_amount = resolved.captured_amount
        self._publish()

    async def _release(self, status: str) -> None:
        assert self._state.hold_id is not None
        try:
            await workflow.execute_activity_method(
                LedgerActivities.release_hold,
                ReleaseHoldInput(hold_id=self._state.hold_id),
                **self._db,
            )
        except ActivityError as exc:
            if non_retryable(exc) is None:
                raise  # already resolved (e.g. expired by the ledger) is fine: nothing is held
        self._state.status = status
        self._publish()

    def _publish(self) -> None:
        publish_status(
            f"card_{self._state.status}",
            user_id=self._inp.user_id,
            amount=self._inp.amount,
            currency=self._inp.currency,
        )
