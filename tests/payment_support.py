"""External-payment test harness: the rail simulator calling back our API served live (uvicorn).

Import the fixtures into a test module (`from tests.payment_support import api, rail, ...`):
`settings` and `api` override the conftest ones. The API port is reserved first so the
simulator's callback URL is known before the settings (which name the simulator's URL for the
workers' `HttpPaymentRail`) exist. Per-test knobs are fixtures a test can override with
`@pytest.mark.parametrize("<knob>", [value])`: `webhooks_enabled`, `poll_interval`,
`approval_timeout`, `submit_max_attempts`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from activities.providers.rail import RAIL_WEBHOOK_PATH
from api.app import create_app
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.embedded import free_port
from core.settings import Settings
from models.audit import AuditEvent
from railsim.server import start_app
from tests.conftest import RunningWorkers
from tests.flows import Customer, fund, register_customer
from tests.rail_support import RAIL_SECRET, eventually, running_rail

GOOD_IBAN = "DE89 3704 0044 0532 0130 00"
REJECTED_IBAN = "DE76999999990000000404"  # the simulator always rejects it at settlement
FINAL = ("completed", "rejected", "cancelled", "failed")


@pytest.fixture
def webhooks_enabled() -> bool:
    """Whether the simulator calls our webhook (False: the workflow must poll)."""
    return True


@pytest.fixture
def poll_interval() -> float:
    """Base interval of the workflow's rail polling, seconds."""
    return 0.5


@pytest.fixture
def approval_timeout() -> int:
    """Seconds a customer has to approve a reviewed payment."""
    return 60


@pytest.fixture
def submit_max_attempts() -> int:
    """Rail submit attempts before `requires_action`."""
    return 2


@pytest.fixture
def api_port() -> int:
    """A free loopback port for the live API (reserved before the simulator starts)."""
    return free_port()


@pytest.fixture
async def rail(api_port: int, webhooks_enabled: bool) -> AsyncIterator[httpx.AsyncClient]:
    """The rail simulator (fast settlement), calling back the live API unless disabled."""
    callback = f"http://127.0.0.1:{api_port}{RAIL_WEBHOOK_PATH}" if webhooks_enabled else None
    async with running_rail(callback, settle_delay_seconds=0.05) as client:
        yield client


@pytest.fixture
def settings(
    base_settings: Settings,
    rail: httpx.AsyncClient,
    api_port: int,
    poll_interval: float,
    approval_timeout: int,
    submit_max_attempts: int,
    hold_ttl: int,
    hold_margin: int,
) -> Settings:
    """Per-test settings pointing at this test's simulator, with tiny durations."""
    suffix = uuid.uuid4().hex[:8]
    return base_settings.model_copy(
        update={
            "task_queue": f"main-{suffix}",
            "external_task_queue": f"external-{suffix}",
            "rail_url": str(rail.base_url),
            "api_public_url": f"http://127.0.0.1:{api_port}",
            "rail_webhook_secret": SecretStr(RAIL_SECRET),
            "payment_approval_timeout_seconds": approval_timeout,
            "rail_submit_max_attempts": submit_max_attempts,
            "rail_retry_initial_interval_seconds": 0.05,
            "rail_poll_interval_seconds": poll_interval,
            "payment_hold_ttl_seconds": hold_ttl,
            "payment_hold_margin_seconds": hold_margin,
        }
    )


@pytest.fixture
async def api(
    services: Services, workers: RunningWorkers, engine: AsyncEngine, api_port: int
) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client of the real app served by uvicorn on `api_port` (the rail calls it too)."""
    served = await start_app(create_app(services.settings, services), port=api_port)
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            yield client
    finally:
        await served.stop()


@dataclass
class Payer:
    """A customer with a funded EUR account and a saved beneficiary."""

    customer: Customer
    account_id: str
    account_number: str
    method_id: str

    @property
    def auth(self) -> dict[str, str]:
        """Authorization header."""
        return self.customer.auth


async def new_payer(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    *,
    email: str = "alice@example.com",
    funds: int = 500_000,
    iban: str = GOOD_IBAN,
    name: str = "Grace Hopper",
) -> Payer:
    """Register a customer, fund the main account (minor units) and save a beneficiary."""
    customer = await register_customer(api, outbox, email)
    account = (await api.get("/api/accounts", headers=customer.auth)).json()["items"][0]
    if funds:
        await fund(sessions, account["id"], funds, "EUR")
    method = await api.post(
        "/api/payments/methods", headers=customer.auth, json={"name": name, "iban": iban}
    )
    assert method.status_code == 201, method.text
    return Payer(customer, account["id"], account["number"], method.json()["id"])


async def pay(
    api: httpx.AsyncClient, payer: Payer, key: str | None, amount: str = "25.00", **extra: Any
) -> httpx.Response:
    """POST /api/payments/external from the payer's account to their beneficiary."""
    body = {
        "from_account_id": payer.account_id,
        "payment_method_id": payer.method_id,
        "amount": amount,
        "currency": "EUR",
        **extra,
    }
    headers = payer.auth | ({"Idempotency-Key": key} if key else {})
    return await api.post("/api/payments/external", headers=headers, json=body)


async def wait_status(
    api: httpx.AsyncClient, payer: Payer, payment_id: str, *wanted: str, max_wait: float = 15
) -> dict[str, Any]:
    """Poll the status URL (workflow query, then database) until the status is one of `wanted`;
    for a terminal status also until the payments row says so."""

    async def probe() -> dict[str, Any] | None:
        answer = await api.get(f"/api/payments/{payment_id}/status", headers=payer.auth)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["status"] not in wanted:
            return None
        if body["status"] in FINAL and body["source"] != "database":
            return None
        return body

    return await eventually(probe, max_wait=max_wait, interval=0.02)


async def payment_row(api: httpx.AsyncClient, payer: Payer, payment_id: str) -> dict[str, Any]:
    """GET /api/payments/{id}."""
    answer = await api.get(f"/api/payments/{payment_id}", headers=payer.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def balance(api: httpx.AsyncClient, payer: Payer) -> tuple[int, int, int]:
    """(posted, held, available) of the payer's account in minor units."""
    body = (await api.get(f"/api/accounts/{payer.account_id}/balance", headers=payer.auth)).json()
    return (
        int(body["posted"]["amount_minor"]),
        int(body["held"]["amount_minor"]),
        int(body["available"]["amount_minor"]),
    )


async def set_rail(rail: httpx.AsyncClient, **control: float) -> None:
    """Change the simulator's delay/rates at runtime."""
    answer = await rail.post("/v1/control", json=control)
    assert answer.status_code == 200, answer.text


async def rail_payment(rail: httpx.AsyncClient, payment_id: str) -> dict[str, Any] | None:
    """The simulator's record of our payment (by reference), or None."""
    answer = await rail.get(f"/v1/payments/by-reference/{payment_id}")
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wrong_totp(secret: str) -> str:
    """A 6-digit code that is not valid for any step of the +/-1 window around now."""
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // 30
    valid = {totp.generate_otp(now_step + offset) for offset in range(-2, 3)}
    code = 0
    while f"{code:06d}" in valid:
        code += 1
    return f"{code:06d}"


async def audit_actions(sessions: SessionFactory, prefix: str) -> list[AuditEvent]:
    """Audit events whose action starts with `prefix`, oldest first."""
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent)
            .where(col(AuditEvent.action).startswith(prefix))
            .order_by(col(AuditEvent.id))
        )
        return list(rows.scalars())
