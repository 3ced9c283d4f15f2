"""The simulated rail: payments in a dict, settlement timers and signed webhook deliveries.
With `state_file` set the payments are also kept in SQLite (`railsim/store.py`), so a restart
keeps them (pending ones settle after their remaining delay), as a real rail would.

Everything runs on one event loop and no handler awaits between reading and writing state, so
the dict needs no lock. Background work (timers, deliveries) are tasks cancelled by `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import propagate

from core.logging import get_logger
from core.signatures import SIGNATURE_HEADER, sign
from railsim.models import (
    FINAL_STATUSES,
    REJECT_NAME_MARKER,
    ControlState,
    ControlUpdate,
    DeliveryState,
    DeliveryView,
    InboundAccepted,
    InboundEvent,
    InboundRequest,
    PaymentEvent,
    PaymentRequest,
    PaymentStatus,
    PaymentView,
    RailConfig,
)
from railsim.store import PaymentStore, StoredPayment

log = get_logger("railsim")

REASON_REJECT_LIST = "AC04: creditor account closed (test reject list)"
REASON_REJECT_NAME = "AG01: transaction forbidden (test creditor name)"
REASON_RANDOM = "MS03: rejected by the creditor bank, reason not specified"
REASON_FORCED = "MS02: rejected by the creditor bank (forced)"
REASON_CANCELLED = "cancelled at the sender's request"


class SimError(Exception):
    """A request the rail refuses; rendered as problem+json by the app."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, payment: PaymentView | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.payment = payment


class NotFoundError(SimError):
    """No such payment or event."""

    status, slug, title = 404, "not-found", "Not found"


class ConflictError(SimError):
    """Reference reused with another body, or the payment is already final."""

    status, slug, title = 409, "conflict", "Conflict with the current state"


class UnavailableError(SimError):
    """Simulated transient outage; nothing was recorded, retry later."""

    status, slug, title = 503, "temporarily-unavailable", "Rail temporarily unavailable"


def _now() -> datetime:
    return datetime.now(UTC)


# W3C trace context: version 00, trace id, parent span id, flags (lower-case hex).
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


@contextlib.contextmanager
def _trace_context(traceparent: str | None) -> Iterator[None]:
    """Make `traceparent` the current trace context for the block: where the process traces
    its HTTP calls (in-process tests, `vortex dev`), the webhook call's own span joins that
    trace instead of overwriting the header with a trace of its own."""
    if not traceparent:
        yield
        return
    token = otel_context.attach(propagate.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        otel_context.detach(token)


@dataclass
class _Payment:
    rail_payment_id: str
    request: PaymentRequest
    created_monotonic: float
    status: PaymentStatus = "pending"
    traceparent: str | None = None  # W3C trace context of the submit, echoed on its webhook
    reason: str | None = None
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    completed_at: datetime | None = None

    def view(self) -> PaymentView:
        return PaymentView(
            rail_payment_id=self.rail_payment_id,
            status=self.status,
            reason=self.reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
            completed_at=self.completed_at,
            **self.request.model_dump(),
        )


@dataclass
class _Delivery:
    event_id: str
    type: str
    body: bytes
    traceparent: str | None = None
    state: DeliveryState = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime = field(default_factory=_now)
    delivered_at: datetime | None = None

    def view(self) -> DeliveryView:
        return DeliveryView(
            event_id=self.event_id,
            type=self.type,
            state=self.state,
            attempts=self.attempts,
            last_status_code=self.last_status_code,
            last_error=self.last_error,
            created_at=self.created_at,
            delivered_at=self.delivered_at,
        )


class RailSimulator:
    """In-memory rail: accepts, settles/rejects after a delay, cancels, and calls back."""

    def __init__(self, config: RailConfig) -> None:
        self.config = config
        self.control = ControlState(
            settle_delay_seconds=config.settle_delay_seconds,
            transient_failure_rate=config.transient_failure_rate,
            reject_rate=config.reject_rate,
        )
        seed = config.seed
        self._failure_rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self._reject_rng = random.Random(None if seed is None else seed + 1)  # noqa: S311
        self._payments: dict[str, _Payment] = {}
        self._by_reference: dict[str, str] = {}
        self._deliveries: dict[str, _Delivery] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._store = PaymentStore(config.state_file) if config.state_file else None
        if self._store is not None:
            for stored in self._store.load():
                self._restore(stored)

    def _restore(self, stored: StoredPayment) -> None:
        age = max(0.0, (_now() - stored.created_at).total_seconds())
        payment = _Payment(
            rail_payment_id=stored.rail_payment_id,
            request=stored.request,
            created_monotonic=time.monotonic() - age,
            status=stored.status,
            reason=stored.reason,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            completed_at=stored.completed_at,
        )
        self._payments[payment.rail_payment_id] = payment
        self._by_reference[payment.request.reference] = payment.rail_payment_id

    def _save(self, payment: _Payment) -> None:
        if self._store is not None:
            self._store.save(
                StoredPayment(
                    rail_payment_id=payment.rail_payment_id,
                    request=payment.request,
                    status=payment.status,
                    reason=payment.reason,
                    created_at=payment.created_at,
                    updated_at=payment.updated_at,
                    completed_at=payment.completed_at,
                )
            )

    async def start(self) -> None:
        """Open the webhook HTTP client (called from the app's lifespan); pending payments
        kept from before a restart settle after the rest of their delay."""
        self._client = httpx.AsyncClient(
            timeout=self.config.webhook_timeout_seconds,
            headers={"User-Agent": "vortex-railsim/1"},
        )
        now = time.monotonic()
        for payment in self._payments.values():
            if payment.status == "pending" and payment.rail_payment_id not in self._timers:
                elapsed = now - payment.created_monotonic
                self._schedule(payment, max(0.0, self.control.settle_delay_seconds - elapsed))

    async def stop(self) -> None:
        """Cancel timers and deliveries, then close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._timers.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- payments -------------------------------------------------------------------------

    def maybe_fail(self) -> None:
        """Raise `UnavailableError` with probability `transient_failure_rate`."""
        rate = self.control.transient_failure_rate
        if rate > 0 and self._failure_rng.random() < rate:
            raise UnavailableError("simulated transient failure; nothing was recorded, retry")

    def submit(
        self, request: PaymentRequest, *, traceparent: str | None = None
    ) -> tuple[PaymentView, bool]:
        """Record a payment (or find it by reference); returns (payment, created). A valid W3C
        `traceparent` of the first submit goes back on the payment's webhook, as rails that
        propagate trace context do, so the callback joins the sender's trace."""
        existing_id = self._by_reference.get(request.reference)
        if existing_id is not None:
            existing = self._payments[existing_id]
            if existing.request != request:
                raise ConflictError(
                    "reference already used for a different payment", payment=existing.view()
                )
            return existing.view(), False
        payment = _Payment(
            rail_payment_id=f"rp_{uuid.uuid4().hex}",
            request=request,
            created_monotonic=time.monotonic(),
            traceparent=traceparent if traceparent and TRACEPARENT.fullmatch(traceparent) else None,
        )
        self._payments[payment.rail_payment_id] = payment
        self._by_reference[request.reference] = payment.rail_payment_id
        self._save(payment)
        self._schedule(payment, self.control.settle_delay_seconds)
        log.info(
            "rail payment accepted",
            rail_payment_id=payment.rail_payment_id,
            reference=request.reference,
            amount=request.amount,
            currency=request.currency,
        )
        return payment.view(), True

    def get(self, rail_payment_id: str) -> PaymentView:
        """The payment with this rail id."""
        return self._payment(rail_payment_id).view()

    def get_by_reference(self, reference: str) -> PaymentView:
        """The payment with this sender reference."""
        rail_payment_id = self._by_reference.get(reference)
        if rail_payment_id is None:
            raise NotFoundError(f"no payment with reference {reference!r}")
        return self._payment(rail_payment_id).view()

    def cancel(self, rail_payment_id: str) -> PaymentView:
        """Cancel a pending payment; idempotent once cancelled, conflict once settled/rejected."""
        payment = self._payment(rail_payment_id)
        if payment.status == "cancelled":
            return payment.view()
        if payment.status != "pending":
            raise ConflictError(f"payment is already {payment.status}", payment=payment.view())
        self._finish(payment, "cancelled", REASON_CANCELLED, notify=False)
        return payment.view()

    def force(
        self, rail_payment_id: str, outcome: PaymentStatus, reason: str | None
    ) -> PaymentView:
        """Settle or reject a pending payment now; repeating the same outcome is a no-op."""
        payment = self._payment(rail_payment_id)
        if payment.status == outcome:
            return payment.view()
        if payment.status != "pending":
            raise ConflictError(f"payment is already {payment.status}", payment=payment.view())
        if outcome == "rejected":
            reason = reason or REASON_FORCED
        self._finish(payment, outcome, reason if outcome == "rejected" else None, notify=True)
        return payment.view()

    def apply_control(self, update: ControlUpdate) -> ControlState:
        """Change rates/delay; a new delay also reschedules pending payments (from submission)."""
        changes = update.model_dump(exclude_none=True)
        self.control = self.control.model_copy(update=changes)
        if "settle_delay_seconds" in changes:
            now = time.monotonic()
            for payment in self._payments.values():
                if payment.status == "pending":
                    elapsed = now - payment.created_monotonic
                    self._schedule(payment, max(0.0, self.control.settle_delay_seconds - elapsed))
        log.info("rail control changed", **changes)
        return self.control

    def _payment(self, rail_payment_id: str) -> _Payment:
        payment = self._payments.get(rail_payment_id)
        if payment is None:
            raise NotFoundError(f"no payment {rail_payment_id!r}")
        return payment

    def _schedule(self, payment: _Payment, delay: float) -> None:
        previous = self._timers.pop(payment.rail_payment_id, None)
        if previous is not None:
            previous.cancel()
        self._timers[payment.rail_payment_id] = self._spawn(
            self._settle_later(payment.rail_payment_id, delay)
        )

    async def _settle_later(self, rail_payment_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timers.pop(rail_payment_id, None)
        payment = self._payments[rail_payment_id]
        if payment.status != "pending":
            return
        status, reason = self._decide(payment.request)
        self._finish(payment, status, reason, notify=True)

    def _decide(self, request: PaymentRequest) -> tuple[PaymentStatus, str | None]:
        if request.creditor_iban in self.config.reject_ibans:
            return "rejected", REASON_REJECT_LIST
        if REJECT_NAME_MARKER in request.creditor_name.upper():
            return "rejected", REASON_REJECT_NAME
        rate = self.control.reject_rate
        if rate > 0 and self._reject_rng.random() < rate:
            return "rejected", REASON_RANDOM
        return "settled", None

    def _finish(
        self, payment: _Payment, status: PaymentStatus, reason: str | None, *, notify: bool
    ) -> None:
        assert status in FINAL_STATUSES
        timer = self._timers.pop(payment.rail_payment_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        now = _now()
        payment.status, payment.reason = status, reason
        payment.updated_at = payment.completed_at = now
        self._save(payment)
        log.info(
            "rail payment final",
            rail_payment_id=payment.rail_payment_id,
            reference=payment.request.reference,
            status=status,
            reason=reason,
        )
        if notify:
            event = PaymentEvent(
                event_id=f"evt_{uuid.uuid4().hex}",
                type="payment.settled" if status == "settled" else "payment.rejected",
                rail_payment_id=payment.rail_payment_id,
                reference=payment.request.reference,
                status=status,
                reason=reason,
                amount=payment.request.amount,
                currency=payment.request.currency,
                occurred_at=now,
            )
            body = event.model_dump_json().encode()
            self._emit(event.event_id, event.type, body, traceparent=payment.traceparent)

    # --- inbound and webhooks -------------------------------------------------------------

    def send_inbound(self, request: InboundRequest) -> InboundAccepted:
        """Announce an inbound payment to our API through a signed webhook."""
        event = InboundEvent(
            event_id=f"evt_{uuid.uuid4().hex}",
            inbound_id=f"in_{uuid.uuid4().hex}",
            occurred_at=_now(),
            **request.model_dump(),
        )
        self._emit(event.event_id, event.type, event.model_dump_json().encode())
        log.info("rail inbound sent", inbound_id=event.inbound_id, amount=request.amount)
        return InboundAccepted(inbound_id=event.inbound_id, event_id=event.event_id)

    def deliveries(self) -> list[DeliveryView]:
        """Every webhook event with its delivery state, oldest first."""
        return [d.view() for d in self._deliveries.values()]

    def delivery(self, event_id: str) -> DeliveryView:
        """One webhook event's delivery state."""
        return self._delivery(event_id).view()

    def redeliver(self, event_id: str) -> DeliveryView:
        """Send an event again (same body and event id, fresh signature): a duplicate webhook."""
        delivery = self._delivery(event_id)
        delivery.state = "pending"
        self._spawn(self._deliver(delivery))
        return delivery.view()

    def _delivery(self, event_id: str) -> _Delivery:
        delivery = self._deliveries.get(event_id)
        if delivery is None:
            raise NotFoundError(f"no webhook event {event_id!r}")
        return delivery

    def _emit(
        self, event_id: str, type_: str, body: bytes, *, traceparent: str | None = None
    ) -> None:
        delivery = _Delivery(event_id=event_id, type=type_, body=body, traceparent=traceparent)
        self._deliveries[event_id] = delivery
        self._spawn(self._deliver(delivery))

    async def _deliver(self, delivery: _Delivery) -> None:
        """POST the event to callback_url until a 2xx, with capped exponential backoff."""
        url = self.config.callback_url
        if url is None:
            delivery.state = "skipped"
            return
        assert self._client is not None, "RailSimulator.start() was not called"
        secret = self.config.webhook_secret
        max_attempts = self.config.webhook_max_attempts
        for attempt in range(1, max_attempts + 1):
            delivery.attempts += 1
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, delivery.body, int(time.time())),
                "X-Rail-Event-Id": delivery.event_id,
                "X-Rail-Delivery-Attempt": str(attempt),
            }
            if delivery.traceparent:
                headers["traceparent"] = delivery.traceparent
            try:
                with _trace_context(delivery.traceparent):
                    response = await self._client.post(url, content=delivery.body, headers=headers)
            except httpx.HTTPError as exc:
                delivery.last_status_code = None
                delivery.last_error = f"{type(exc).__name__}: {exc}"
            else:
                delivery.last_status_code = response.status_code
                delivery.last_error = None
                if response.is_success:
                    delivery.state = "delivered"
                    delivery.delivered_at = _now()
                    log.info("rail webhook delivered", event_id=delivery.event_id, attempt=attempt)
                    return
            log.warning(
                "rail webhook delivery failed",
                event_id=delivery.event_id,
                attempt=attempt,
                status_code=delivery.last_status_code,
                error=delivery.last_error,
            )
            if attempt < max_attempts:
                backoff = self.config.webhook_backoff_seconds * 2 ** (attempt - 1)
                await asyncio.sleep(min(backoff, self.config.webhook_backoff_max_seconds))
        delivery.state = "failed"
        log.error("rail webhook given up", event_id=delivery.event_id, attempts=max_attempts)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("rail background task failed", exc_info=task.exception())
