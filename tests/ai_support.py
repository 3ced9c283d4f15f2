"""AI test helpers: the LLM simulator served on loopback, settings pointing at it, a customer
with seeded history (rows of the transactions read model)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend
from core.settings import Settings
from llmsim.app import create_llm_app
from models.ledger.tables import Direction, Transaction, TransactionStatus
from railsim.server import serve_app
from tests.flows import Customer, fund, register_customer


@dataclass
class Simulator:
    """The running LLM simulator: its base URL (with /v1) and a client for its control."""

    url: str
    control: httpx.AsyncClient

    async def set(self, **control: Any) -> None:
        """Change its behaviour (mode, latency_seconds, fail_next)."""
        response = await self.control.post("/v1/control", json=control)
        assert response.status_code == 200, response.text

    async def requests(self) -> list[dict[str, Any]]:
        """Every completion request it received."""
        return list((await self.control.get("/v1/requests")).json())


@pytest.fixture
async def llm() -> AsyncIterator[Simulator]:
    """The OpenAI-compatible simulator on a free loopback port."""
    async with serve_app(create_llm_app()) as served, httpx.AsyncClient(base_url=served.url) as c:
        yield Simulator(served.url + "/v1", c)


def ai_settings(settings: Settings, llm_url: str | None, **extra: Any) -> Settings:
    """Settings with the LLM endpoint and short, test-friendly AI limits."""
    return settings.model_copy(
        update={
            "llm_base_url": llm_url,
            "llm_model": "llmsim-1",
            "llm_timeout_seconds": 2.0,
            "llm_max_attempts": 2,
            "llm_retry_initial_seconds": 0.05,
            "ai_chat_wait_seconds": 30.0,
            **extra,
        }
    )


@dataclass
class Shopper:
    """A registered customer with their main account."""

    customer: Customer
    account_id: uuid.UUID
    account_number: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header."""
        return self.customer.auth


async def new_shopper(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    email: str = "ada@example.com",
    funds: int = 0,
) -> Shopper:
    """Register a customer (and fund the main EUR account)."""
    customer = await register_customer(api, outbox, email)
    account = (await api.get("/api/accounts", headers=customer.auth)).json()["items"][0]
    if funds:
        await fund(sessions, account["id"], funds, "EUR")
    return Shopper(customer, uuid.UUID(account["id"]), account["number"])


async def user_id_of(sessions: SessionFactory, account_id: uuid.UUID) -> uuid.UUID:
    """The owner of an account."""
    from models.ledger.tables import LedgerAccount

    async with sessions() as session:
        account = await session.get(LedgerAccount, account_id)
    assert account is not None
    assert account.owner_user_id is not None
    return account.owner_user_id


async def seed(
    sessions: SessionFactory,
    shopper: Shopper,
    rows: Sequence[tuple[int, str, str | None, datetime]],
    *,
    description: str = "",
) -> list[uuid.UUID]:
    """Posted card debits (amount minor EUR, merchant, category, when) for the shopper."""
    user_id = await user_id_of(sessions, shopper.account_id)
    ids = []
    async with transaction(sessions) as session:
        for amount, merchant, category, when in rows:
            row = Transaction(
                account_id=shopper.account_id,
                user_id=user_id,
                kind="card",
                amount=amount,
                currency="EUR",
                direction=Direction.DEBIT,
                status=TransactionStatus.POSTED,
                merchant=merchant,
                description=description or f"Card payment {merchant}",
                category=category,
                occurred_at=when,
            )
            session.add(row)
            ids.append(row.id)
    return ids


def days_ago(days: float, hour: int = 12) -> datetime:
    """An instant some days back, at a given UTC hour."""
    day = datetime.now(UTC) - timedelta(days=days)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)
