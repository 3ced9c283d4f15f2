# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""External payments when things break: the worker process is SIGKILLed mid-flight and
restarted, the rail refuses the instruction at submit time, and the rail is unreachable when
the customer cancels. Every path ends with the money moved exactly once (or not at all) and the
ledger invariant check passing."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.client import Client

from activities.ledger.verify import verify_ledger
from activities.providers.rail import HttpPaymentRail, PaymentRail, RailPayment, SubmitPayment
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.embedded import free_port
from core.settings import Settings
from models.ledger.tables import Hold, HoldStatus, JournalEntry
from models.payments.tables import Payment, PaymentStatus
from tests.conftest import TEST_SECRET, RunningWorkers
from tests.payment_support import (  # noqa: F401 - fixtures
    FINAL,
    Payer,
    api,
    api_port,
    approval_timeout,
    balance,
    new_payer,
    pay,
    payment_row,
    poll_interval,
    rail,
    rail_payment,
    set_rail,
    submit_max_attempts,
    wait_status,
    webhooks_enabled,
)
from tests.rail_support import RAIL_SECRET, eventually, payment_body
from workers.assembly import WorkerDeps, build_workers

FUNDS = 500_000  # 5000.00 EUR
PAYMENTS = 8
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(
    base_settings: Settings,
    rail: httpx.AsyncClient,
    api_port: int,
    poll_interval: float,
    approval_timeout: int,
    submit_max_attempts: int,
) -> Settings:
    """tests.payment_support's settings (this test's simulator, tiny durations), and the API
    answers 202 at once instead of waiting for the workflow."""
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
            "payment_sync_wait_seconds": 0.0,
            "db_activity_timeout_seconds": 2.0,
        }
    )


@pytest.fixture
async def alice(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> Payer:
    """A customer with 5000.00 EUR and a beneficiary."""
    return await new_payer(api, outbox, sessions, funds=FUNDS)


WorkerProcess = Callable[[], Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def worker_process(settings: Settings, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    """Starts `vortex worker` subprocesses on this test's task queues, configured like the
    in-process workers (services, queues, rail URL, webhook secret, public API URL); all killed
    at the end. Their output goes to tmp_path/worker-<n>.log."""
    procs: list[asyncio.subprocess.Process] = []
    env = os.environ | {
        "VORTEX_ENVIRONMENT": settings.environment,
        "VORTEX_DATABASE_URL": str(settings.database_url),
        "VORTEX_REDIS_URL": str(settings.redis_url),
        "VORTEX_TEMPORAL_ADDRESS": str(settings.temporal_address),
        "VORTEX_TASK_QUEUE": settings.task_queue,
        "VORTEX_EXTERNAL_TASK_QUEUE": settings.external_task_queue,
        "VORTEX_SECRET_KEY": TEST_SECRET,
        "VORTEX_EMAIL_BACKEND": settings.email_backend,
        "VORTEX_RAIL_URL": settings.rail_url,
        "VORTEX_RAIL_WEBHOOK_SECRET": settings.rail_webhook_secret.get_secret_value(),
        "VORTEX_API_PUBLIC_URL": settings.api_public_url,
        "VORTEX_PAYMENT_APPROVAL_TIMEOUT_SECONDS": str(settings.payment_approval_timeout_seconds),
        "VORTEX_RAIL_SUBMIT_MAX_ATTEMPTS": str(settings.rail_submit_max_attempts),
        "VORTEX_RAIL_RETRY_INITIAL_INTERVAL_SECONDS": str(
            settings.rail_retry_initial_interval_seconds
        ),
        "VORTEX_RAIL_POLL_INTERVAL_SECONDS": str(settings.rail_poll_interval_seconds),
        "VORTEX_DB_ACTIVITY_TIMEOUT_SECONDS": str(settings.db_activity_timeout_seconds),
        "VORTEX_LOG_LEVEL": "WARNING",
    }

    async def start() -> asyncio.subprocess.Process:
        with (tmp_path / f"worker-{len(procs)}.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cli.main",
                "worker",
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=log,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@asynccontextmanager
async def in_process_workers(
    temporal_client: Client,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
    rail: PaymentRail | None = None,
) -> AsyncIterator[None]:
    """Real workers on the test's task queues (optionally with another rail), stopped after."""
    built = build_workers(
        temporal_client, WorkerDeps(settings=settings, sessions=sessions, email=outbox, rail=rail)
    )
    running = [asyncio.create_task(w.run()) for w in built]
    try:
        yield
    finally:
        await asyncio.gather(*(w.shutdown() for w in built), return_exceptions=True)
        await asyncio.gather(*running, return_exceptions=True)


async def _statuses(sessions: SessionFactory) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(select(col(Payment.id), col(Payment.status)))
        return {str(pid): str(status) for pid, status in rows.all()}


async def _holds(sessions: SessionFactory) -> list[Hold]:
    async with sessions() as session:
        return list((await session.execute(select(Hold))).scalars())


async def _captures(sessions: SessionFactory) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(JournalEntry)
            .where(col(JournalEntry.kind) == "hold_capture")
        )
    return int(count or 0)


async def _ledger_ok(sessions: SessionFactory) -> None:
    report = await verify_ledger(sessions)
    assert report.ok, report


def _amount(n: int) -> str:
    return f"{n + 1}.{10 + n:02d}"  # 1.10, 2.11, ... distinct amounts


async def test_killed_worker_mid_payments_every_payment_completes_exactly_once(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    workers: RunningWorkers,
    sessions: SessionFactory,
    worker_process: WorkerProcess,
) -> None:
    await set_rail(rail, settle_delay_seconds=300)  # pending at the rail until we say so
    await asyncio.gather(*(w.shutdown() for w in workers.workers))  # from now on: subprocesses
    first = await worker_process()

    async def send(n: int) -> httpx.Response:
        return await pay(api, alice, f"ext-crash-{n}", amount=_amount(n))

    accepted = await asyncio.gather(*(send(n) for n in range(PAYMENTS)))
    assert {r.status_code for r in accepted} <= {201, 202}, [r.text for r in accepted]
    ids = [r.json()["id"] for r in accepted]
    total = sum(round(float(_amount(n)) * 100) for n in range(PAYMENTS))

    async def some_submitted() -> dict[str, str] | None:
        statuses = await _statuses(sessions)
        submitted = [s for s in statuses.values() if s == PaymentStatus.SUBMITTED]
        return statuses if len(submitted) >= 2 else None

    await eventually(some_submitted, max_wait=60, interval=0.01)
    first.kill()  # SIGKILL: no graceful shutdown, activities and workflow tasks cut mid-flight
    await first.wait()
    at_kill = await _statuses(sessions)
    assert not any(s in FINAL for s in at_kill.values()), at_kill  # nothing could settle yet

    await worker_process()
    retried = await asyncio.gather(*(send(n) for n in range(PAYMENTS)))  # client retries too
    assert [r.json()["id"] for r in retried] == ids
    await set_rail(rail, settle_delay_seconds=0.05)  # the rail settles everything it has

    async def all_final() -> dict[str, str] | None:
        statuses = await _statuses(sessions)
        return statuses if all(s in FINAL for s in statuses.values()) else None

    final = await eventually(all_final, max_wait=180, interval=0.1)
    assert sorted(final) == sorted(ids)
    assert set(final.values()) == {PaymentStatus.COMPLETED}, (final, at_kill)
    for payment_id in ids:
        at_rail = await rail_payment(rail, payment_id)
        assert at_rail is not None
        assert at_rail["status"] == "settled"
        row = await payment_row(api, alice, payment_id)
        assert row["status"] == "completed"
    holds = await _holds(sessions)
    assert len(holds) == PAYMENTS  # one hold per payment, despite the replays
    assert {h.status for h in holds} == {HoldStatus.CAPTURED}
    assert all(h.captured_amount == h.amount for h in holds)
    assert len({h.capture_entry_id for h in holds}) == PAYMENTS
    assert await _captures(sessions) == PAYMENTS  # exactly one capture each
    assert await balance(api, alice) == (FUNDS - total, 0, FUNDS - total)
    await _ledger_ok(sessions)


async def test_rail_refusing_the_instruction_at_submit_releases_the_hold(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    workers: RunningWorkers,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    # Nobody works the queues while we plant, at the rail, another payment under the reference
    # our payment will use (its id): the real submit then conflicts (409). The planted one stays
    # pending (no webhook): only the refusal of our submit decides this payment.
    await set_rail(rail, settle_delay_seconds=300)
    await asyncio.gather(*(w.shutdown() for w in workers.workers))
    created = await pay(api, alice, "refused-at-submit", amount="30.00")
    assert created.status_code in (201, 202), created.text
    payment_id = created.json()["id"]
    planted = await rail.post("/v1/payments", json=payment_body(payment_id, amount=1))
    assert planted.status_code == 202, planted.text

    async with in_process_workers(temporal_client, settings, sessions, outbox):
        final = await wait_status(api, alice, payment_id, *FINAL, max_wait=30)

    assert final["status"] in ("failed", "rejected"), final
    assert final["failure_reason"].startswith("the rail refused the payment"), final
    row = await payment_row(api, alice, payment_id)
    assert (row["status"], row["failure_reason"]) == (final["status"], final["failure_reason"])
    holds = await _holds(sessions)
    assert [(h.amount, h.status) for h in holds] == [(3_000, HoldStatus.RELEASED)]
    assert await _captures(sessions) == 0
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    at_rail = await rail_payment(rail, payment_id)
    assert at_rail is not None  # only the planted one is there, still pending
    assert (at_rail["amount"], at_rail["status"]) == (1, "pending")
    await _ledger_ok(sessions)


async def test_cancel_is_refused_while_the_rail_is_unreachable_then_the_payment_settles_once(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    workers: RunningWorkers,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    await set_rail(rail, settle_delay_seconds=300)
    payment_id = (await pay(api, alice, "cancel-unreachable", amount="12.00")).json()["id"]
    await wait_status(api, alice, payment_id, "submitted")
    at_rail = await rail_payment(rail, payment_id)
    assert at_rail is not None
    assert at_rail["status"] == "pending"
    await asyncio.gather(*(w.shutdown() for w in workers.workers))

    closed = HttpPaymentRail(f"http://127.0.0.1:{free_port()}", timeout=2.0)  # nobody listens
    try:
        async with in_process_workers(temporal_client, settings, sessions, outbox, rail=closed):
            refused = await api.post(f"/api/payments/{payment_id}/cancel", headers=alice.auth)
            assert refused.status_code == 409, refused.text
            assert refused.json()["type"].endswith("/not-cancellable")
            assert "could not be reached" in refused.json()["detail"], refused.json()
            status = (
                await api.get(f"/api/payments/{payment_id}/status", headers=alice.auth)
            ).json()
            assert status["status"] == "submitted", status
            # The outcome is unknown: the money stays held, nothing released or captured.
            assert await balance(api, alice) == (FUNDS, 1_200, FUNDS - 1_200)
            assert [h.status for h in await _holds(sessions)] == [HoldStatus.PENDING]
            assert (await payment_row(api, alice, payment_id))["status"] == "submitted"
    finally:
        await closed.aclose()
    still = await rail_payment(rail, payment_id)
    assert still is not None
    assert still["status"] == "pending"  # the rail never heard the cancel

    async with in_process_workers(temporal_client, settings, sessions, outbox):
        settled = await rail.post(f"/v1/payments/{at_rail['rail_payment_id']}/settle")
        assert settled.status_code == 200, settled.text
        final = await wait_status(api, alice, payment_id, *FINAL, max_wait=30)
        again = await api.post(f"/api/payments/{payment_id}/cancel", headers=alice.auth)

    assert final["status"] == "completed", final
    assert again.status_code == 409
    holds = await _holds(sessions)
    assert [(h.status, h.captured_amount) for h in holds] == [(HoldStatus.CAPTURED, 1_200)]
    assert await _captures(sessions) == 1
    assert await balance(api, alice) == (FUNDS - 1_200, 0, FUNDS - 1_200)
    await _ledger_ok(sessions)


class _LaxRail:
    """A provider that answers a submit with another payment filed under the same reference
    (a rail that does not enforce reference uniqueness): the amount differs from ours."""

    def __init__(self, real: HttpPaymentRail) -> None:
        self._real = real

    async def submit(self, payment: SubmitPayment) -> RailPayment:
        answer = await self._real.submit(payment)
        return answer.model_copy(update={"amount": payment.amount + 1})

    async def status(self, reference: str) -> RailPayment:
        return await self._real.status(reference)

    async def cancel(self, rail_payment_id: str) -> RailPayment:
        return await self._real.cancel(rail_payment_id)


async def test_a_submit_answered_with_another_payment_releases_the_hold_and_fails(
    api: httpx.AsyncClient,
    alice: Payer,
    rail: httpx.AsyncClient,
    workers: RunningWorkers,
    settings: Settings,
    temporal_client: Client,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    await set_rail(rail, settle_delay_seconds=300)
    await asyncio.gather(*(w.shutdown() for w in workers.workers))
    payment_id = (await pay(api, alice, "lax-rail", amount="15.00")).json()["id"]
    real = HttpPaymentRail(settings.rail_url)
    try:
        async with in_process_workers(
            temporal_client, settings, sessions, outbox, rail=_LaxRail(real)
        ):
            final = await wait_status(api, alice, payment_id, *FINAL, max_wait=30)
    finally:
        await real.aclose()

    assert final["status"] == "failed", final
    assert final["failure_reason"].startswith("the rail holds another payment"), final
    assert [h.status for h in await _holds(sessions)] == [HoldStatus.RELEASED]
    assert await _captures(sessions) == 0
    assert await balance(api, alice) == (FUNDS, 0, FUNDS)
    await _ledger_ok(sessions)
