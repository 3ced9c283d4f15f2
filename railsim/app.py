"""HTTP face of the simulated payment rail (FastAPI), built by `create_rail_app(config)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from railsim.engine import RailSimulator, SimError
from railsim.models import (
    ControlState,
    ControlUpdate,
    DeliveryView,
    InboundAccepted,
    InboundRequest,
    PaymentRequest,
    PaymentView,
    RailConfig,
    RejectRequest,
)

PROBLEM_BASE = "https://railsim.vortexcore.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

router = APIRouter()


def _rail(request: Request) -> RailSimulator:
    sim: RailSimulator = request.app.state.rail
    return sim


Rail = Annotated[RailSimulator, Depends(_rail)]


def _problem(
    status_code: int, slug: str, title: str, detail: str, instance: str, **extra: Any
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status_code,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    headers = {"Retry-After": "1"} if status_code == 503 else None
    return JSONResponse(body, status_code, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def _sim_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SimError)
    extra: dict[str, Any] = {}
    if exc.payment is not None:
        extra["payment"] = exc.payment.model_dump(mode="json")
    return _problem(exc.status, exc.slug, exc.title, exc.detail, request.url.path, **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return _problem(
        422,
        "validation-error",
        "Invalid request",
        "The request is not valid; see errors.",
        request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    return _problem(exc.status_code, slug, str(exc.detail), str(exc.detail), request.url.path)


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness of the simulator."""
    return {"status": "ok"}


@router.post("/v1/payments", status_code=status.HTTP_202_ACCEPTED)
async def submit_payment(
    body: PaymentRequest,
    rail: Rail,
    response: Response,
    traceparent: Annotated[str | None, Header(max_length=128)] = None,
) -> PaymentView:
    """Accept a payment (202); the same reference again returns it (200), another body 409.
    A W3C `traceparent` comes back on the payment's webhook."""
    rail.maybe_fail()
    payment, created = rail.submit(body, traceparent=traceparent)
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return payment


@router.get("/v1/payments/by-reference/{reference}")
async def get_payment_by_reference(reference: str, rail: Rail) -> PaymentView:
    """Current state of the payment with this sender reference."""
    rail.maybe_fail()
    return rail.get_by_reference(reference)


@router.get("/v1/payments/{rail_payment_id}")
async def get_payment(rail_payment_id: str, rail: Rail) -> PaymentView:
    """Current state of a payment."""
    rail.maybe_fail()
    return rail.get(rail_payment_id)


@router.post("/v1/payments/{rail_payment_id}/cancel")
async def cancel_payment(rail_payment_id: str, rail: Rail) -> PaymentView:
    """Cancel while pending (repeatable); 409 once settled or rejected."""
    rail.maybe_fail()
    return rail.cancel(rail_payment_id)


@router.post("/v1/payments/{rail_payment_id}/settle")
async def force_settle(rail_payment_id: str, rail: Rail) -> PaymentView:
    """Test control: settle a pending payment now (and send its webhook)."""
    return rail.force(rail_payment_id, "settled", None)


@router.post("/v1/payments/{rail_payment_id}/reject")
async def force_reject(
    rail_payment_id: str, rail: Rail, body: Annotated[RejectRequest | None, Body()] = None
) -> PaymentView:
    """Test control: reject a pending payment now (and send its webhook)."""
    return rail.force(rail_payment_id, "rejected", body.reason if body else None)


@router.post("/v1/inbound", status_code=status.HTTP_202_ACCEPTED)
async def send_inbound(body: InboundRequest, rail: Rail) -> InboundAccepted:
    """Send money into the bank: a signed `inbound.received` webhook to the callback URL."""
    return rail.send_inbound(body)


@router.get("/v1/control")
async def get_control(rail: Rail) -> ControlState:
    """Current delay and failure/reject rates."""
    return rail.control


@router.post("/v1/control")
async def set_control(body: ControlUpdate, rail: Rail) -> ControlState:
    """Change delay and failure/reject rates at runtime."""
    return rail.apply_control(body)


@router.get("/v1/webhooks")
async def list_webhooks(rail: Rail) -> list[DeliveryView]:
    """Every webhook event sent so far with its delivery state."""
    return rail.deliveries()


@router.get("/v1/webhooks/{event_id}")
async def get_webhook(event_id: str, rail: Rail) -> DeliveryView:
    """Delivery state of one webhook event."""
    return rail.delivery(event_id)


@router.post("/v1/webhooks/{event_id}/redeliver", status_code=status.HTTP_202_ACCEPTED)
async def redeliver_webhook(event_id: str, rail: Rail) -> DeliveryView:
    """Send an event again, unchanged but freshly signed (to test duplicate handling)."""
    return rail.redeliver(event_id)


def create_rail_app(config: RailConfig) -> FastAPI:
    """Build the simulator app; its lifespan owns the timers and webhook deliveries."""
    sim = RailSimulator(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sim.start()
        try:
            yield
        finally:
            await sim.stop()

    app = FastAPI(
        title="VortexCore payment rail simulator",
        version="1",
        description="Simulated external payment rail: latency, failures, signed webhooks.",
        lifespan=lifespan,
    )
    app.state.rail = sim
    app.add_exception_handler(SimError, _sim_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(router)
    return app
