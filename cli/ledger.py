"""`vortex ledger ...`: ledger maintenance commands against the configured database."""

from __future__ import annotations

import argparse
import asyncio

from activities.ledger import LedgerError
from activities.ledger.ops_funding import fund_by_number
from activities.ledger.verify import format_report, verify_ledger
from core.db import create_engine, create_session_factory
from core.settings import Settings
from models.money import AmountError, CurrencyError


async def _verify(settings: Settings, as_json: bool) -> int:
    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        report = await verify_ledger(create_session_factory(engine))
    finally:
        await engine.dispose()
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        print(format_report(report))
    return 0 if report.ok else 1


async def _fund(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        entry = await fund_by_number(
            create_session_factory(engine),
            args.account_number,
            args.amount,
            args.reference,
            args.reason,
        )
    except (LedgerError, AmountError, CurrencyError) as exc:
        print(f"refused: {exc}")
        return 1
    finally:
        await engine.dispose()
    print(f"credited: journal entry {entry.entry_id} ({args.amount} to {args.account_number})")
    return 0


def run_ledger_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `vortex ledger` action; the return value is the process exit code."""
    if args.action == "verify":
        return asyncio.run(_verify(settings, bool(args.json)))
    if args.action == "fund":
        return asyncio.run(_fund(settings, args))
    raise SystemExit(f"unknown ledger action {args.action!r}")
