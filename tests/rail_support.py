"""Rail simulator test helpers: run it live on loopback, record its webhooks, poll with bounds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from railsim.app import create_rail_app
from railsim.models import RailConfig
from railsim.server import serve_app, start_app

RAIL_SECRET = "test-rail-webhook-secret"
T = TypeVar("T")


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        """The body as JSON."""
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class WebhookReceiver:
    """A tiny ASGI app recording every POST; answers 500 while `fail_next` > 0, then 200."""

    fail_next: int = 0
    received: list[ReceivedWebhook] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> JSONResponse:
        body = await request.body()
        self.received.append(ReceivedWebhook(dict(request.headers), body))
        if self.fail_next > 0:
            self.fail_next -= 1
            return JSONResponse({"error": "scripted failure"}, status_code=500)
        return JSONResponse({"ok": True})

    def events(self, **match: Any) -> list[ReceivedWebhook]:
        """Received requests whose JSON body has all the given key/values."""
        return [r for r in self.received if all(r.json.get(k) == v for k, v in match.items())]


@asynccontextmanager
async def running_receiver() -> AsyncIterator[WebhookReceiver]:
    """A webhook receiver served on a free loopback port (its URL in `.url`)."""
    receiver = WebhookReceiver()
    async with serve_app(receiver.app) as served:
        receiver.url = served.url + "/hook"
        yield receiver


def rail_config(callback_url: str | None, **overrides: Any) -> RailConfig:
    """Simulator configuration with fast test timings."""
    settings: dict[str, Any] = {
        "webhook_secret": RAIL_SECRET,
        "callback_url": callback_url,
        "settle_delay_seconds": 0.05,
        "seed": 1234,
        "webhook_backoff_seconds": 0.02,
        "webhook_backoff_max_seconds": 0.1,
        "webhook_timeout_seconds": 2.0,
        **overrides,
    }
    return RailConfig(**settings)


@asynccontextmanager
async def running_rail(
    callback_url: str | None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator served on a free loopback port; yields a client of it."""
    app = create_rail_app(rail_config(callback_url, **overrides))
    async with serve_app(app) as served, httpx.AsyncClient(base_url=served.url) as client:
        yield client


@asynccontextmanager
async def running_rail_and_receiver(
    **overrides: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, WebhookReceiver]]:
    """A receiver and a simulator calling it back; both stopped together (uvicorn takes ~0.15 s)."""
    receiver = WebhookReceiver()
    receiver_served = await start_app(receiver.app)
    receiver.url = receiver_served.url + "/hook"
    try:
        rail_served = await start_app(create_rail_app(rail_config(receiver.url, **overrides)))
    except BaseException:
        await receiver_served.stop()
        raise
    try:
        async with httpx.AsyncClient(base_url=rail_served.url) as client:
            yield client, receiver
    finally:
        await asyncio.gather(rail_served.stop(), receiver_served.stop())


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, max_wait: float = 5.0, interval: float = 0.01
) -> T:
    """Poll `probe` until it returns something other than None (bounded, not a timing check)."""
    for _ in range(int(max_wait / interval)):
        result = await probe()
        if result is not None:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not reached after {max_wait}s of polling")


def payment_body(reference: str, **overrides: Any) -> dict[str, Any]:
    """A valid POST /v1/payments body."""
    return {
        "reference": reference,
        "amount": 12_345,
        "currency": "EUR",
        "creditor_name": "Ada Lovelace",
        "creditor_iban": "DE89 3704 0044 0532 0130 00",
        "debtor_account": "VX-0001",
        **overrides,
    }
