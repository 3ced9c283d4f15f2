"""`vortex ledger verify` as a real process against the test database: exit 0 on a healthy
ledger, exit 1 and the culprit named when a stored balance disagrees with its postings."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from sqlalchemy import text

from activities.ledger.verify import format_report, verify_ledger
from core.db import SessionFactory, transaction
from tests.ledger_support import funded_account, new_user


async def vortex(database_url: str, *args: str) -> tuple[int, str]:
    """Run the `vortex` CLI in a subprocess; returns (exit code, stdout)."""
    env = {**os.environ, "VORTEX_DATABASE_URL": database_url, "VORTEX_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_verify_passes_on_a_healthy_ledger(
    sessions: SessionFactory, database_url: str
) -> None:
    owner = await new_user(sessions)
    await funded_account(sessions, owner, 12_345, "EUR")
    await funded_account(sessions, owner, 500, "JPY")

    code, out = await vortex(database_url, "ledger", "verify")

    assert code == 0, out
    assert "OK" in out
    assert "123.45" in out  # customer posted total, formatted in the currency's decimals
    assert "JPY" in out


async def test_verify_fails_and_names_an_account_whose_balance_drifted(
    sessions: SessionFactory, database_url: str
) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 1_000)
    async with transaction(sessions) as session:  # corruption the application never writes
        await session.execute(
            text("UPDATE ledger_accounts SET posted = posted + 1 WHERE id = :id"), {"id": account}
        )

    code, out = await vortex(database_url, "ledger", "verify", "--json")

    assert code == 1
    report = json.loads(out)
    eur = next(c for c in report["currencies"] if c["currency"] == "EUR")
    assert eur["posted_mismatches"] == [
        {"account_id": str(account), "stored": 1_001, "computed": 1_000}
    ]
    assert eur["postings_sum"] == 0  # the postings themselves are still balanced


async def test_report_text_lists_every_kind_of_problem(sessions: SessionFactory) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 1_000)
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE ledger_accounts SET posted = posted + 1, held = 1 WHERE id = :id"),
            {"id": account},
        )

    report = await verify_ledger(sessions)

    shown = format_report(report)
    assert not report.ok
    assert shown.splitlines()[0].endswith("FAILED")
    assert f"account {account} posted 1001 != postings 1000" in shown
    assert f"account {account} held 1 != pending holds 0" in shown
