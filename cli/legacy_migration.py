"""`vortex legacy-migration start|status|pause|resume|abort|cutover|rollback|finalize`: drive the
per-domain `MigrationWorkflow`s (the same signals and updates work from the Temporal UI, and
the same actions from `/api/staff/migrations`; both go through activities/migration/control)."""

from __future__ import annotations

import argparse
import asyncio

from activities.migration.control import (
    DomainStatus,
    MigrationAction,
    MigrationRefused,
    act,
    domain_statuses,
)
from core.db import create_engine, create_session_factory
from core.settings import Settings
from models.migration.payloads import MigrationProgress, VerificationReport
from models.migration.tables import MigrationDomain
from temporal.client import connect_for

ACTIONS = ("status", *(a.value for a in MigrationAction))


def migration_arguments(parser: argparse.ArgumentParser) -> None:
    """An action and (except for `status`) a domain."""
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("domain", nargs="?", choices=[d.value for d in MigrationDomain])


def describe(progress: MigrationProgress) -> str:
    """A few lines for ops."""
    eta = "-" if progress.eta_seconds is None else f"{progress.eta_seconds:.0f} s"
    lines = [
        f"{progress.domain}: {progress.stage}{' (paused)' if progress.paused else ''}",
        f"  migrated {progress.backfilled}, quarantined {progress.quarantined} "
        f"of ~{progress.total_estimate}; {progress.rows_per_second} rows/s, ETA {eta}",
        f"  backfill cursor {progress.backfill_cursor}, CDC cursor {progress.cdc_cursor}, "
        f"{progress.applied_events} events applied",
    ]
    return "\n".join(lines + _checks(progress.last_verification))


def _checks(report: VerificationReport | None) -> list[str]:
    if report is None:
        return []
    return [f"  check {c.name}: {c.outcome} ({c.detail})" for c in report.checks]


def _status_line(status: DomainStatus) -> str:
    if status.progress is not None:
        return describe(status.progress)
    if status.run is None:
        return f"{status.domain}: not started"
    run = status.run
    state = (
        "workflow running, but no worker answered its progress query: are the workers up?"
        if status.unanswered
        else "workflow closed"
    )
    return (
        f"{status.domain}: {run.stage} ({state}); migrated {run.backfilled}, "
        f"quarantined {run.quarantined}"
    )


async def _command(settings: Settings, args: argparse.Namespace) -> int:
    client = await connect_for(settings)
    engine = create_engine(settings.effective_database_url, pool_size=1)
    sessions = create_session_factory(engine)
    domain = MigrationDomain(args.domain) if args.domain else None
    try:
        if args.action == "status":
            for status in await domain_statuses(client, sessions, domain):
                print(_status_line(status))
            return 0
        if domain is None:
            raise SystemExit(f"`{args.action}` needs a domain")
        try:
            outcome = await act(client, sessions, settings, domain, MigrationAction(args.action))
        except MigrationRefused as refused:
            print("\n".join([f"refused: {refused}", *_checks(refused.verification)]))
            return 1
        print("\n".join([f"{outcome.said}: {outcome.workflow_id}", *_checks(outcome.verification)]))
        if args.action == MigrationAction.FINALIZE:
            (status,) = await domain_statuses(client, sessions, domain)
            print(_status_line(status))
        return 0
    finally:
        await engine.dispose()


def run_migration_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `vortex legacy-migration` action; the exit code says whether it was done."""
    return asyncio.run(_command(settings, args))
