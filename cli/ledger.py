"""`vortex ledger ...`: ledger maintenance commands against the configured database."""

from __future__ import annotations

import argparse
import asyncio

from activities.ledger_verify import format_report, verify_ledger
from core.db import create_engine, create_session_factory
from core.settings import Settings


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


def run_ledger_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `vortex ledger` action; the return value is the process exit code."""
    if args.action == "verify":
        return asyncio.run(_verify(settings, bool(args.json)))
    raise SystemExit(f"unknown ledger action {args.action!r}")
