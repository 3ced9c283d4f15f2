"""`vortex`: dev (everything embedded), api, worker, migrate, schedules, rail, ledger,
payments."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from core.logging import configure_logging, get_logger
from core.settings import Settings, get_settings

log = get_logger("vortex")


def _run_until_signal(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, fast_loop: bool = False
) -> None:
    """Run `main(stop)`; SIGINT/SIGTERM (Ctrl-C) set `stop` so it can shut down in order.
    `fast_loop` runs it on uvloop (the API: its event-loop overhead is per request)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)
        log.info("stopped cleanly")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop if fast_loop else None) as loop_runner:
        loop_runner.run(runner())


def cmd_dev(settings: Settings, args: argparse.Namespace) -> None:
    """Start and supervise embedded services, migrate, run the workers and the API; Ctrl-C,
    SIGTERM or SIGHUP stops everything."""
    from cli.supervisor import dev_guard, run_until_signal

    with dev_guard(settings) as pid_dir:  # imported only once nothing refused to start
        from cli.dev import run_dev

        run_until_signal(lambda stop: run_dev(settings, stop, demo=args.demo), pid_dir=pid_dir)


def cmd_api(settings: Settings, args: argparse.Namespace) -> None:
    """Serve the API against configured services."""
    from cli.runtime import run_api

    _run_until_signal(lambda stop: run_api(settings, stop), fast_loop=True)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    """Run the Temporal workers against configured services."""
    from cli.runtime import run_workers

    _run_until_signal(lambda stop: run_workers(settings, stop))


def cmd_rail(settings: Settings, args: argparse.Namespace) -> None:
    """Serve the payment rail simulator alone."""
    from cli.rail import run_rail

    _run_until_signal(lambda stop: run_rail(settings, stop))


def cmd_schedules(settings: Settings, args: argparse.Namespace) -> None:
    """Create or update the project's Temporal Schedules (idempotent)."""
    from temporal.client import connect_temporal
    from temporal.schedules import apply_schedules

    async def apply() -> None:
        client = await connect_temporal(
            settings.effective_temporal_address, settings.temporal_namespace
        )
        for schedule_id, outcome in await apply_schedules(client, settings):
            print(f"{outcome:8} {schedule_id}", flush=True)

    asyncio.run(apply())


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    """Apply database migrations up to head."""
    from models.migrate import upgrade_to_head

    upgrade_to_head(settings.effective_database_url)
    log.info("database migrated to head")


def cmd_ledger(settings: Settings, args: argparse.Namespace) -> None:
    """Ledger maintenance; `verify` checks the invariants and exits 1 when one is broken."""
    from cli.ledger import run_ledger_command

    sys.exit(run_ledger_command(settings, args))


def cmd_payments(settings: Settings, args: argparse.Namespace) -> None:
    """Payment ops: `reconcile` one payment, or `resolve` one the rail does not know."""
    from cli.payments import run_payments_command

    sys.exit(run_payments_command(settings, args))


def _payments_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.payments import payments_arguments

    payments_arguments(parser)


def _ledger_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="prove the ledger invariants per currency")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    fund = actions.add_parser(
        "fund", help="ops: credit a customer account from external settlement (audited)"
    )
    fund.add_argument("account_number", help="12-digit customer account number")
    fund.add_argument("amount", help="decimal amount in the account's currency, e.g. 250.00")
    fund.add_argument("--reference", required=True, help="unique reference (idempotency key)")
    fund.add_argument("--reason", required=True, help="why the account is credited (audited)")


def cmd_users(settings: Settings, args: argparse.Namespace) -> None:
    """Ops: disable or re-enable a customer (audited)."""
    from cli.users import run_users_command

    sys.exit(run_users_command(settings, args))


def _users_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.users import add_user_arguments

    add_user_arguments(parser)


COMMANDS: dict[str, tuple[Callable[[Settings, argparse.Namespace], None], str]] = {
    "dev": (cmd_dev, "everything on embedded services (Temporal + UI, PostgreSQL, Redis)"),
    "api": (cmd_api, "run the HTTP API only"),
    "worker": (cmd_worker, "run the Temporal workers only"),
    "migrate": (cmd_migrate, "apply database migrations"),
    "rail": (cmd_rail, "run the payment rail simulator only"),
    "schedules": (cmd_schedules, "create or update the Temporal Schedules (idempotent)"),
    "ledger": (cmd_ledger, "ledger maintenance: `vortex ledger verify|fund`"),
    "users": (cmd_users, "ops: `vortex users disable|enable EMAIL --reason ...`"),
    "payments": (cmd_payments, "payment ops: `vortex payments reconcile|resolve <id>`"),
}

# Commands that take arguments of their own.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "ledger": _ledger_arguments,
    "users": _users_arguments,
    "payments": _payments_arguments,
}


def _dev_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo", action="store_true", help="seed a demo customer with accounts and history"
    )


ARGUMENTS["dev"] = _dev_arguments


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vortex` console script."""
    parser = argparse.ArgumentParser(prog="vortex", description="VortexCore banking backend")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text)
        if name in ARGUMENTS:
            ARGUMENTS[name](command_parser)
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    COMMANDS[args.command][0](settings, args)


if __name__ == "__main__":
    main(sys.argv[1:])
