"""Payment-rail activities (external task queue): submit, look up and cancel outbound payments.

Each is one HTTP call through the `PaymentRail` seam, heartbeating while it waits so a
cancellation from the workflow reaches it. Errors cross Temporal as `ApplicationError`s typed
with the rail error's class name: `RailTransientError` is retryable (the workflow's retry policy
backs off and bounds the attempts); `RailRejectedError`, `RailConflictError` and
`RailNotFoundError` are non-retryable. A call refused by the rail's open circuit breaker
(`RailCircuitOpen`) is retryable with `next_retry_delay` set to the breaker's remaining open
time (`temporal/breakers.py`), so the next attempt is the half-open trial. Submitting is
idempotent at the rail (the reference is our payment id), so a retried or repeated submit
returns the payment accepted the first time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers.rail import (
    PaymentRail,
    RailCircuitOpen,
    RailConflictError,
    RailError,
    RailNotFoundError,
    RailPayment,
    SubmitPayment,
)
from models.payments.payloads import (
    RailCancelInput,
    RailLookup,
    RailPaymentSnapshot,
    RailStatusInput,
    RailSubmitInput,
)
from temporal.breakers import retry_later

T = TypeVar("T")
HEARTBEAT_EVERY_SECONDS = 2.0


def snapshot(payment: RailPayment) -> RailPaymentSnapshot:
    """The workflow's view of a rail payment."""
    return RailPaymentSnapshot(
        rail_payment_id=payment.rail_payment_id,
        status=payment.status,
        reason=payment.reason,
        amount=payment.amount,
        currency=payment.currency,
    )


def _as_application_error(exc: RailError) -> ApplicationError:
    if isinstance(exc, RailCircuitOpen):  # the next attempt waits for the half-open window
        return retry_later(str(exc), exc.retry_after, type=type(exc).__name__)
    return ApplicationError(
        str(exc),
        {"status_code": exc.status_code, "problem_type": exc.problem_type},
        type=type(exc).__name__,
        non_retryable=not exc.retryable,
    )


async def _heartbeating(call: Awaitable[T]) -> T:
    """Await `call`, heartbeating meanwhile; a cancellation of the activity cancels the call."""
    task = asyncio.ensure_future(call)
    try:
        while True:
            activity.heartbeat()
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_SECONDS)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()


class RailActivities:
    """Calls to the payment rail; registered on the external task queue."""

    def __init__(self, rail: PaymentRail) -> None:
        self._rail = rail

    @activity.defn(name="rail.submit")
    async def submit(self, req: RailSubmitInput) -> RailPaymentSnapshot:
        """Submit an outbound payment (idempotent: the rail dedupes by reference)."""
        payment = SubmitPayment(
            reference=req.reference,
            amount=req.amount,
            currency=req.currency,
            creditor_name=req.creditor_name,
            creditor_iban=req.creditor_iban,
            debtor_account=req.debtor_account,
        )
        try:
            return snapshot(await _heartbeating(self._rail.submit(payment)))
        except RailError as exc:
            raise _as_application_error(exc) from exc

    @activity.defn(name="rail.status")
    async def status(self, req: RailStatusInput) -> RailLookup:
        """The rail's current view of the payment with our reference (none if it never got it)."""
        try:
            return RailLookup(
                payment=snapshot(await _heartbeating(self._rail.status(req.reference)))
            )
        except RailNotFoundError:
            return RailLookup()
        except RailError as exc:
            raise _as_application_error(exc) from exc

    @activity.defn(name="rail.cancel")
    async def cancel(self, req: RailCancelInput) -> RailLookup:
        """Cancel at the rail; if it is too late, answer the payment's final state instead."""
        try:
            return RailLookup(
                payment=snapshot(await _heartbeating(self._rail.cancel(req.rail_payment_id)))
            )
        except RailConflictError as exc:  # already settled or rejected
            if exc.payment is not None:
                return RailLookup(payment=snapshot(exc.payment))
            return await self.status(RailStatusInput(reference=req.reference))
        except RailNotFoundError:
            return RailLookup()
        except RailError as exc:
            raise _as_application_error(exc) from exc

    def all(self) -> list[object]:
        """Every rail activity, for worker registration."""
        return [self.submit, self.status, self.cancel]
