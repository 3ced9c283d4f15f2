"""The Temporal server dies mid-transfers and comes back on its SQLite file: clients that never
retry still see every transfer reach a final state exactly once (the ones refused with a 503
are started by the reconciler), and the ledger balances.

Runs a dev server of its own (free ports, a file under tmp_path), never the session one.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from activities.ledger.verify import verify_ledger
from api.app import create_app
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.embedded import free_ports
from core.settings import Settings
from models.ledger.tables import JournalEntry
from models.payments.tables import Payment, PaymentStatus
from temporal.client import connect_temporal
from temporal.devserver import DevServerProcess
from tests.conftest import TEST_CONVERTER
from tests.flows import Customer, fund, register_customer
from tests.rail_support import eventually
from tests.recovery_support import run_reconciler
from workers.assembly import WorkerDeps, build_workers

BEFORE, DURING, WHILE_DOWN = 4, 8, 4
AMOUNT = 100  # 1.00 EUR each


class OwnTemporal:
    """A dev server this test owns: started, killed (SIGKILL) and started again on its file."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, ui_port = free_ports(2)
        self.server = DevServerProcess(
            port=self.port,
            ui_port=ui_port,
            db_file=tmp_path / "temporal.sqlite",
            log_file=tmp_path / "temporal.log",
        )

    @property
    def address(self) -> str:
        """host:port of its frontend."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start it (again) and wait for its ports."""
        self.server.prepare()
        self.server.spawn()
        await self.server.ready()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        pid = self.server.child.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.fixture
async def own_temporal(tmp_path: Path) -> AsyncIterator[OwnTemporal]:
    """The test's own dev server, stopped afterwards."""
    own = OwnTemporal(tmp_path)
    await own.start()
    try:
        yield own
    finally:
        await asyncio.to_thread(own.server.stop)


async def _transfer(
    client: httpx.AsyncClient, who: Customer, source: str, dest: str, key: str
) -> httpx.Response:
    body: dict[str, Any] = {
        "from_account_id": source,
        "to_account_id": dest,
        "amount": "1.00",
        "currency": "EUR",
    }
    headers = who.auth | {"Idempotency-Key": key}
    return await client.post("/api/payments/transfer", headers=headers, json=body)


async def test_transfers_survive_a_temporal_crash_and_restart_exactly_once(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    settings: Settings,
    own_temporal: OwnTemporal,
) -> None:
    alice = await register_customer(api, outbox, "alice@example.com")
    source = (await api.get("/api/accounts", headers=alice.auth)).json()["items"][0]["id"]
    await fund(sessions, source, 10_000, "EUR")
    savings = await api.post(
        "/api/accounts", headers=alice.auth, json={"currency": "EUR", "name": "Savings"}
    )
    dest = savings.json()["id"]
    fault_settings = settings.model_copy(update={"temporal_address": own_temporal.address})
    worker_client = await connect_temporal(own_temporal.address, converter=TEST_CONVERTER)
    api_client = await connect_temporal(
        own_temporal.address,
        converter=TEST_CONVERTER,
        retry_seconds=fault_settings.temporal_rpc_retry_seconds,
    )
    workers = build_workers(
        worker_client, WorkerDeps(settings=fault_settings, sessions=sessions, email=outbox)
    )
    running = [asyncio.create_task(w.run()) for w in workers]
    services = await Services.connect(fault_settings, temporal=api_client)
    app = create_app(fault_settings, services)
    answers: list[httpx.Response] = []
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            for i in range(BEFORE):
                answers.append(await _transfer(client, alice, source, dest, f"before-{i}"))
            during = [
                asyncio.create_task(_transfer(client, alice, source, dest, f"during-{i}"))
                for i in range(DURING)
            ]
            await asyncio.wait(during, return_when=asyncio.FIRST_COMPLETED)
            own_temporal.kill()
            answers += await asyncio.gather(*during)
            for i in range(WHILE_DOWN):
                answers.append(await _transfer(client, alice, source, dest, f"down-{i}"))
            await own_temporal.start()
            reconciled = await run_reconciler(worker_client, fault_settings)

            async def all_final() -> bool | None:
                async with sessions() as session:
                    open_ = await session.scalar(
                        select(func.count())
                        .select_from(Payment)
                        .where(
                            col(Payment.status).not_in(
                                [PaymentStatus.COMPLETED, PaymentStatus.FAILED]
                            )
                        )
                    )
                return True if open_ == 0 else None

            await eventually(all_final, max_wait=60, interval=0.2)
    finally:
        await services.close()
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*running, return_exceptions=True)

    statuses = [a.status_code for a in answers]
    assert all(code in (200, 201, 202, 503) for code in statuses), statuses
    assert statuses[:BEFORE] == [201] * BEFORE
    assert statuses[-WHILE_DOWN:] == [503] * WHILE_DOWN
    assert reconciled.started >= WHILE_DOWN
    async with sessions() as session:
        payments = list((await session.execute(select(Payment))).scalars())
        entries = await session.scalar(
            select(func.count())
            .select_from(JournalEntry)
            .where(col(JournalEntry.idempotency_key).startswith("transfer:"))
        )
    total = BEFORE + DURING + WHILE_DOWN
    assert len(payments) == total  # one row per request: no request made two
    assert {p.status for p in payments} == {PaymentStatus.COMPLETED}
    assert entries == total  # each transfer posted exactly once
    balance = (await api.get(f"/api/accounts/{dest}/balance", headers=alice.auth)).json()
    assert int(balance["posted"]["amount_minor"]) == total * AMOUNT
    assert (await verify_ledger(sessions)).ok
