# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""Circuit breakers: the state machine (purgatory under `core.breakers`), and the rail's breaker
opening under injected failures while a payment is in flight, then closing again, the payment
still ending exactly once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import aiosmtplib
import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlmodel import col
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from activities.ledger.verify import verify_ledger
from core.breakers import BreakerBoard, BreakerOpen, breaker_states, configure_breakers
from core.db import SessionFactory
from core.email import MemoryEmailBackend, OutgoingEmail, SmtpEmailBackend
from core.embedded import free_port
from core.settings import Settings
from models.ledger.tables import Transaction
from temporal.breakers import BreakerInterceptor
from tests.payment_support import (  # noqa: F401 - fixtures
    Payer,
    api,
    api_port,
    approval_timeout,
    balance,
    new_payer,
    pay,
    poll_interval,
    rail,
    rail_payment,
    set_rail,
    settings,
    submit_max_attempts,
    wait_status,
    webhooks_enabled,
)
from tests.rail_support import eventually

FUNDS = 100_000


class Outage(Exception):
    """The outside system failed."""


class Refusal(Exception):
    """The outside system answered no."""


async def _fail(board: BreakerBoard, exc: Exception) -> None:
    with pytest.raises(type(exc)):
        async with board.guard("rail", ignore=lambda e: isinstance(e, Refusal)):
            raise exc


async def _until_half_open(board: BreakerBoard) -> None:
    """Wait (bounded) until the rail breaker's recovery time has passed."""

    async def half_open() -> bool | None:
        return board.state("rail").state == "half-open" or None

    await eventually(half_open, max_wait=2)


async def test_a_breaker_opens_after_the_threshold_and_closes_after_a_good_trial_call() -> None:
    board = BreakerBoard(failure_threshold=2, recovery_seconds=0.05)
    await _fail(board, Outage())
    await _fail(board, Refusal())  # an answer: resets the count, does not open
    await _fail(board, Outage())
    assert board.state("rail").state == "closed"

    await _fail(board, Outage())

    assert board.state("rail").state == "open"
    with pytest.raises(BreakerOpen) as refused:
        async with board.guard("rail"):
            pytest.fail("an open breaker must not run the call")
    assert 0 < refused.value.retry_after <= 0.05

    await _until_half_open(board)
    async with board.guard("rail"):
        pass  # the trial call succeeds
    assert board.state("rail").state == "closed"


async def test_a_failed_trial_call_reopens_the_breaker() -> None:
    board = BreakerBoard(failure_threshold=1, recovery_seconds=0.05)
    await _fail(board, Outage())

    await _until_half_open(board)
    await _fail(board, Outage())
    assert board.state("rail").state == "open"


async def test_a_half_open_breaker_lets_one_trial_call_through_at_a_time() -> None:
    board = BreakerBoard(failure_threshold=1, recovery_seconds=0.05)
    await _fail(board, Outage())

    await _until_half_open(board)
    trial_running, finish_trial = asyncio.Event(), asyncio.Event()

    async def trial() -> None:
        async with board.guard("rail"):
            trial_running.set()
            await finish_trial.wait()

    running = asyncio.create_task(trial())
    await trial_running.wait()
    with pytest.raises(BreakerOpen) as refused:  # a second caller waits for the trial's verdict
        async with board.guard("rail"):
            pytest.fail("only the trial call may run while half-open")
    assert 0 < refused.value.retry_after <= 0.05
    finish_trial.set()
    await running
    assert board.state("rail").state == "closed"
    calls = 0
    for _ in range(3):  # closed again: everyone goes through
        async with board.guard("rail"):
            calls += 1
    assert calls == 3


async def test_a_cancelled_trial_call_leaves_the_breaker_half_open_for_the_next_caller() -> None:
    board = BreakerBoard(failure_threshold=1, recovery_seconds=0.05)
    await _fail(board, Outage())

    await _until_half_open(board)
    started = asyncio.Event()

    async def trial() -> None:
        async with board.guard("rail"):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(trial())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert board.state("rail").state == "half-open"  # no verdict from a trial that never ended
    await _fail(board, Outage())  # the next caller is the trial, and its failure counts
    assert board.state("rail").state == "open"


async def test_a_cancelled_call_is_not_a_failure() -> None:
    board = BreakerBoard(failure_threshold=1, recovery_seconds=30)

    async def slow() -> None:
        async with board.guard("smtp"):
            await asyncio.Event().wait()

    task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert board.state("smtp").state == "closed"


def _metric(metric: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(metric, labels)
    return 0.0 if value is None else value


async def _pending_failure(client: Client, payment_id: str) -> str | None:
    """The failure type of the pending rail submit's last attempt."""
    description = await client.get_workflow_handle(f"payment-{payment_id}").describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name == "rail.submit" and pending.HasField("last_failure"):
            return str(pending.last_failure.application_failure_info.type)
    return None


@pytest.mark.parametrize("submit_max_attempts", [30])
async def test_the_rail_breaker_opens_under_failures_and_closes_with_the_payment_paid_once(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    rail: httpx.AsyncClient,
    temporal_client: Client,
    settings: Settings,
) -> None:
    configure_breakers(
        settings.model_copy(
            update={"breaker_failure_threshold": 2, "breaker_recovery_seconds": 1.5}
        )
    )
    opens_before = _metric("vortex_breaker_opens_total", name="rail")
    payer: Payer = await new_payer(api, outbox, sessions, funds=FUNDS)
    await set_rail(rail, transient_failure_rate=1.0)

    payment_id = (await pay(api, payer, "brk-1", amount="12.00")).json()["id"]

    async def refused_by_the_breaker() -> str | None:
        kind = await _pending_failure(temporal_client, payment_id)
        return kind if kind == "RailCircuitOpen" else None

    await eventually(refused_by_the_breaker, max_wait=15, interval=0.05)
    assert _metric("vortex_breaker_opens_total", name="rail") > opens_before
    scraped = (await api.get("/metrics")).text
    assert 'vortex_breaker_state{name="rail"}' in scraped
    waiting = (await api.get(f"/api/payments/{payment_id}", headers=payer.auth)).json()["status"]
    assert f'vortex_payments_open{{status="{waiting}"}} 1.0' in scraped  # in flight, counted

    await set_rail(rail, transient_failure_rate=0.0)

    await wait_status(api, payer, payment_id, "completed", max_wait=20)
    assert [s.state for s in breaker_states() if s.name == "rail"] == ["closed"]
    assert _metric("vortex_breaker_state", name="rail") == 0
    assert await balance(api, payer) == (FUNDS - 1_200, 0, FUNDS - 1_200)
    at_rail: dict[str, Any] | None = await rail_payment(rail, payment_id)
    assert at_rail is not None
    assert at_rail["amount"] == 1_200
    async with sessions() as session:
        debits = await session.execute(
            select(col(Transaction.amount), col(Transaction.status)).where(
                col(Transaction.account_id) == uuid.UUID(payer.account_id),
                col(Transaction.direction) == "debit",
            )
        )
    assert [tuple(row) for row in debits] == [(1_200, "posted")]  # paid exactly once
    report = await verify_ledger(sessions)
    assert report.ok, report


async def test_smtp_outages_open_the_smtp_breaker_and_calls_then_fail_fast(
    base_settings: Settings,
) -> None:
    settings = base_settings.model_copy(
        update={
            "email_backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": free_port(),  # nothing listens: connection refused
            "breaker_failure_threshold": 2,
            "breaker_recovery_seconds": 60,
        }
    )
    configure_breakers(settings)
    backend = SmtpEmailBackend(settings)
    mail = OutgoingEmail(to="a@example.com", subject="hi", body="hello")
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPConnectError):
            await backend.send(mail)

    with pytest.raises(BreakerOpen) as refused:
        await backend.send(mail)

    assert refused.value.name == "smtp"
    assert [s.state for s in breaker_states() if s.name == "smtp"] == ["open"]


@activity.defn(name="test.flaky_outside_call")
async def _refused_by_breaker() -> str:
    if activity.info().attempt == 1:
        raise BreakerOpen("llm", retry_after=30)
    return "answered"


@workflow.defn(name="BreakerProbeWorkflow", sandboxed=False)
class _BreakerProbeWorkflow:
    @workflow.run
    async def run(self) -> str:
        return str(
            await workflow.execute_activity(
                "test.flaky_outside_call",
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
            )
        )


async def test_an_open_breaker_in_any_activity_delays_the_next_attempt_to_the_half_open_window(
    temporal_client: Client,
) -> None:
    queue = f"breaker-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        temporal_client,
        task_queue=queue,
        workflows=[_BreakerProbeWorkflow],
        activities=[_refused_by_breaker],
        interceptors=[BreakerInterceptor()],
    )
    async with worker:
        handle = await temporal_client.start_workflow(
            _BreakerProbeWorkflow.run, id=f"breaker-probe-{queue}", task_queue=queue
        )

        async def retry_scheduled() -> Any:
            described = await handle.describe()
            pending = described.raw_description.pending_activities
            return pending[0] if pending and pending[0].attempt == 2 else None

        pending = await eventually(retry_scheduled, max_wait=10)
        await handle.terminate("seen enough")

    failure = pending.last_failure.application_failure_info
    assert failure.type == "BreakerOpen"
    assert not failure.non_retryable
    wait = (
        pending.scheduled_time.ToDatetime() - pending.last_attempt_complete_time.ToDatetime()
    ).total_seconds()
    assert wait >= 29  # the breaker's 30 s, not the policy's 10 ms
