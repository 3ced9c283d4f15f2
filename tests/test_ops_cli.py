"""Ops commands: `vortex ledger fund` credits once per reference and is audited; `vortex ledger
verify` passes afterwards. Run as real subprocesses against the test database."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlmodel import col

from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.audit import AuditEvent
from tests.cli_support import run_vortex
from tests.flows import register_customer


async def test_ops_funding_credits_once_per_reference_and_is_audited(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    settings: Settings,
    sessions: SessionFactory,
) -> None:
    customer = await register_customer(api, outbox)
    account = (await api.get("/api/accounts", headers=customer.auth)).json()["items"][0]
    args = ("ledger", "fund", account["number"], "250.00", "--reference", "T-1", "--reason", "x")

    first = await run_vortex(settings, *args)
    again = await run_vortex(settings, *args)
    bad = await run_vortex(
        settings,
        "ledger",
        "fund",
        account["number"],
        "1.001",
        "--reference",
        "T-2",
        "--reason",
        "x",
    )
    verify = await run_vortex(settings, "ledger", "verify")

    assert first[0] == 0, first[1]
    assert again[0] == 0
    assert bad[0] == 1
    assert "fractional" in bad[1]
    assert verify[0] == 0, verify[1]
    balance = (
        await api.get(f"/api/accounts/{account['id']}/balance", headers=customer.auth)
    ).json()
    assert balance["posted"]["amount"] == "250.00"
    async with sessions() as session:
        audited = (
            await session.execute(
                select(AuditEvent).where(col(AuditEvent.action) == "ledger.funding")
            )
        ).scalars()
        assert len(list(audited)) == 1
