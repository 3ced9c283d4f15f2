"""`vortex reports backfill --month 2026-11`: (re)run a month's reports for every customer.

Starts `MonthlyReportsWorkflow` with the month given (workflow id `monthly-reports-<month>`; a
run of that id still going is attached to, not doubled). Reports already ready are skipped:
each is unique per (customer, month), so a backfill never duplicates one or its notice.
"""

from __future__ import annotations

import argparse
import asyncio

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from activities.analytics.periods import parse_month
from core.settings import Settings
from models.reports.payloads import MonthlyReportsState
from temporal.client import connect_for
from temporal.ids import monthly_reports_workflow_id
from temporal.schedules import monthly_reports_input


def reports_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vortex reports`."""
    actions = parser.add_subparsers(dest="action", required=True)
    backfill = actions.add_parser("backfill", help="produce a month's reports for every customer")
    backfill.add_argument("--month", required=True, help="the month, YYYY-MM (e.g. 2026-11)")
    backfill.add_argument(
        "--no-wait", action="store_true", help="return once started (default: wait and report)"
    )


async def backfill(settings: Settings, month: str, wait: bool) -> tuple[str, int]:
    """Start (or attach to) the month's fan-out; what to print and how many reports failed."""
    client = await connect_for(settings)
    handle = await client.start_workflow(
        "MonthlyReportsWorkflow",
        monthly_reports_input(settings, month),
        id=monthly_reports_workflow_id(month),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary=f"Monthly reports backfill {month}",
        result_type=MonthlyReportsState,
    )
    if not wait:
        return f"started {handle.id}", 0
    result = await handle.result()
    return (
        f"{handle.id}: {result.reports} reports, {result.skipped} skipped "
        f"(already done or running), {result.failed} failed",
        result.failed,
    )


def run_reports_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `vortex reports <action>`; exit 2 for a malformed month, 1 when a report failed."""
    try:
        first = parse_month(args.month)
    except ValueError as exc:
        print(exc)
        return 2
    outcome, failed = asyncio.run(backfill(settings, f"{first:%Y-%m}", wait=not args.no_wait))
    print(outcome)
    return 1 if failed else 0
