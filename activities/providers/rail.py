"""The payment-rail seam: what activities call to move money out, whoever the provider is.

`PaymentRail` is the interface; `HttpPaymentRail` implements it against the bundled simulator's
HTTP API (`railsim`), and a real provider adapter can replace it later. Errors are typed by what
the caller should do: `RailTransientError` -> retry with backoff; `RailRejectedError`,
`RailConflictError`, `RailNotFoundError` -> do not retry. A payment that the rail rejects *after*
accepting it is not an error: `status()` returns it with `status == "rejected"` and a reason
(and a `payment.rejected` webhook arrives). The webhook bodies are parsed by `parse_rail_event`
after `core.signatures.verify` has checked the `X-Rail-Signature` header.
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from core.breakers import BreakerOpen, breaker
from models.text import SINGLE_LINE, Text

RailPaymentStatus = Literal["pending", "settled", "rejected", "cancelled"]
RAIL_FINAL_STATUSES: frozenset[str] = frozenset({"settled", "rejected", "cancelled"})
# Where the rail calls us back: `<api_public_url>` + this path (the API's webhook route).
RAIL_WEBHOOK_PATH = "/api/webhooks/rail"


def rail_callback_url(api_public_url: str) -> str:
    """The webhook URL to give the rail, from our API's public base URL."""
    return api_public_url.rstrip("/") + RAIL_WEBHOOK_PATH


class SubmitPayment(BaseModel):
    """An outbound payment instruction; `reference` (our payment id) is the idempotency key."""

    model_config = ConfigDict(frozen=True)

    reference: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
    amount: Annotated[int, Field(gt=0)]  # minor units
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    creditor_name: Annotated[str, Field(min_length=1, max_length=140)]
    creditor_iban: Annotated[str, Field(min_length=1, max_length=64)]
    debtor_account: Annotated[str, Field(min_length=1, max_length=64)]


class RailPayment(BaseModel):
    """A payment as the rail reports it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rail_payment_id: str
    reference: str
    status: RailPaymentStatus
    reason: str | None = None
    amount: int | None = None  # what the rail holds under the reference, when it says
    currency: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """Settled, rejected or cancelled: the status will not change any more."""
        return self.status in RAIL_FINAL_STATUSES


class RailPaymentEvent(BaseModel):
    """Webhook: an outbound payment reached a final state at the rail (text: `models.text`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Annotated[str, Field(min_length=1, max_length=128), SINGLE_LINE]
    type: Literal["payment.settled", "payment.rejected"]
    rail_payment_id: Text
    reference: Text
    status: RailPaymentStatus
    reason: Text | None = None
    amount: int | None = None  # checked against our payment when present
    currency: Text | None = None
    occurred_at: datetime


class RailInboundEvent(BaseModel):
    """Webhook: money arrived for one of our accounts (text: the one input policy)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Annotated[str, Field(min_length=1, max_length=128), SINGLE_LINE]
    type: Literal["inbound.received"]
    inbound_id: Text
    to_account_number: Text
    amount: Annotated[int, Field(strict=True, gt=0)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$"), SINGLE_LINE]
    debtor_name: Text
    debtor_iban: Text
    reference: Text | None = None
    occurred_at: datetime


RailEvent = Annotated[RailPaymentEvent | RailInboundEvent, Field(discriminator="type")]
_EVENT_ADAPTER: TypeAdapter[RailPaymentEvent | RailInboundEvent] = TypeAdapter(RailEvent)


def parse_rail_event(body: bytes) -> RailPaymentEvent | RailInboundEvent:
    """Parse a (signature-verified) webhook body; raises pydantic.ValidationError if malformed."""
    return _EVENT_ADAPTER.validate_json(body)


class RailError(Exception):
    """Base of rail errors; `retryable` says whether trying again later can help."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        problem_type: str | None = None,
        payment: RailPayment | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.problem_type = problem_type
        self.payment = payment  # the rail's current view of the payment, when it sent one


class RailTransientError(RailError):
    """5xx, 429, timeouts, connection errors, garbled answers: retry with backoff."""

    retryable = True


class RailCircuitOpen(RailTransientError):
    """Our breaker refused the call: the rail failed repeatedly; `retry_after` seconds until a
    trial call is let through."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RailRejectedError(RailError):
    """The rail refused the request itself (invalid instruction): do not retry."""


class RailConflictError(RailError):
    """Reference reused with another body, or the payment is already final: do not retry."""


class RailNotFoundError(RailError):
    """The rail has no such payment (e.g. a submit that never arrived): do not retry."""


# For Temporal retry policies: `RetryPolicy(non_retryable_error_types=NON_RETRYABLE_RAIL_ERRORS)`.
NON_RETRYABLE_RAIL_ERRORS: tuple[str, ...] = (
    RailRejectedError.__name__,
    RailConflictError.__name__,
    RailNotFoundError.__name__,
)


class PaymentRail(Protocol):
    """What activities need from a payment provider."""

    async def submit(self, payment: SubmitPayment) -> RailPayment:
        """Submit a payment; resubmitting the same reference and body returns the same payment."""
        ...

    async def status(self, reference: str) -> RailPayment:
        """Current state of the payment submitted under `reference`."""
        ...

    async def cancel(self, rail_payment_id: str) -> RailPayment:
        """Cancel a pending payment (repeatable); RailConflictError once settled or rejected."""
        ...


_TRANSIENT_STATUSES = frozenset({408, 425, 429})


class HttpPaymentRail:
    """`PaymentRail` over the simulator's HTTP API with httpx; one client, reused."""

    def __init__(
        self, base_url: str, timeout: float = 10.0, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            headers={"User-Agent": "vortexcore-rail-client/1", "Accept": "application/json"},
        )

    async def submit(self, payment: SubmitPayment) -> RailPayment:
        """POST /v1/payments (idempotent by reference)."""
        return await self._call("POST", "/v1/payments", json=payment.model_dump(mode="json"))

    async def status(self, reference: str) -> RailPayment:
        """GET /v1/payments/by-reference/{reference}."""
        return await self._call("GET", f"/v1/payments/by-reference/{quote(reference, safe='')}")

    async def cancel(self, rail_payment_id: str) -> RailPayment:
        """POST /v1/payments/{rail_payment_id}/cancel."""
        return await self._call("POST", f"/v1/payments/{quote(rail_payment_id, safe='')}/cancel")

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        """Use as `async with HttpPaymentRail(url) as rail:`."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.aclose()

    async def _call(self, method: str, path: str, json: Any = None) -> RailPayment:
        """One request under the rail's circuit breaker: only transient errors (the rail down,
        slow or garbled) count; an answer that refuses the request means the rail is up."""
        try:
            async with breaker("rail", ignore=_rail_answered):
                return await self._request(method, path, json)
        except BreakerOpen as exc:
            raise RailCircuitOpen(str(exc), exc.retry_after) from None

    async def _request(self, method: str, path: str, json: Any) -> RailPayment:
        url = self.base_url + path
        try:
            response = await self._client.request(method, url, json=json)
        except httpx.TimeoutException as exc:
            raise RailTransientError(f"rail timed out: {method} {path}") from exc
        except httpx.RequestError as exc:
            raise RailTransientError(f"rail unreachable: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            try:
                return RailPayment.model_validate_json(response.content)
            except ValidationError as exc:
                raise RailTransientError(
                    f"rail sent an unreadable answer to {method} {path}",
                    status_code=response.status_code,
                ) from exc
        raise _error_for(response, f"{method} {path}")


def _rail_answered(exc: BaseException) -> bool:
    """A rail error that is an answer (rejected, conflict, not found), not an outage."""
    return isinstance(exc, RailError) and not exc.retryable


def _error_for(response: httpx.Response, what: str) -> RailError:
    """Map a non-2xx answer (problem+json when the rail sends one) to a typed error."""
    code = response.status_code
    detail, problem_type, payment = response.reason_phrase, None, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("title") or detail)
        problem_type = body.get("type") if isinstance(body.get("type"), str) else None
        try:
            payment = RailPayment.model_validate(body["payment"]) if "payment" in body else None
        except ValidationError:
            payment = None
    message = f"{what} -> {code}: {detail}"
    kwargs: dict[str, Any] = {
        "status_code": code,
        "problem_type": problem_type,
        "payment": payment,
    }
    if code >= 500 or code in _TRANSIENT_STATUSES:
        return RailTransientError(message, **kwargs)
    if code == 404:
        return RailNotFoundError(message, **kwargs)
    if code == 409:
        return RailConflictError(message, **kwargs)
    return RailRejectedError(message, **kwargs)
