"""`vortex`: dev (everything embedded), api, worker, relay, migrate, schedules, rail, ledger,
payments, users, staff, codec-server, events, watch."""

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
from core.tracing import install_tracing

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

        run_until_signal(
            lambda stop: run_dev(settings, stop, demo=args.demo, legacy=args.legacy),
            pid_dir=pid_dir,
        )


def cmd_api(settings: Settings, args: argparse.Namespace) -> None:
    """Serve the API against configured services."""
    from cli.runtime import run_api

    _run_until_signal(lambda stop: run_api(settings, stop), fast_loop=True)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    """Run the Temporal workers (and the outbox relay, unless --no-relay) against configured
    services."""
    from cli.runtime import run_workers

    _run_until_signal(lambda stop: run_workers(settings, stop, relay=not args.no_relay))


def cmd_relay(settings: Settings, args: argparse.Namespace) -> None:
    """Run the outbox relay alone (one leader at a time; extra processes stand by)."""
    from cli.runtime import run_relay

    _run_until_signal(lambda stop: run_relay(settings, stop))


def cmd_rail(settings: Settings, args: argparse.Namespace) -> None:
    """Serve the payment rail simulator alone."""
    from cli.rail import run_rail

    _run_until_signal(lambda stop: run_rail(settings, stop))


def cmd_codec_server(settings: Settings, args: argparse.Namespace) -> None:
    """Serve the payload codec server for the Temporal UI (staff only)."""
    from cli.codec_server import run_codec_server

    _run_until_signal(lambda stop: run_codec_server(settings, stop))


def cmd_schedules(settings: Settings, args: argparse.Namespace) -> None:
    """Create or update the project's Temporal Schedules (idempotent)."""
    from temporal.client import connect_for
    from temporal.schedules import apply_schedules

    async def apply() -> None:
        client = await connect_for(settings)
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


def cmd_watch(settings: Settings, args: argparse.Namespace) -> None:
    """Ops: print a customer's live events from the API's `/ws` (audited)."""
    from cli.watch import run_watch_command

    sys.exit(run_watch_command(settings, args))


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.watch import watch_arguments

    watch_arguments(parser)


def _users_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.users import add_user_arguments

    add_user_arguments(parser)


def cmd_staff(settings: Settings, args: argparse.Namespace) -> None:
    """Ops: grant or revoke a staff role (audited)."""
    from cli.staff import run_staff_command

    sys.exit(run_staff_command(settings, args))


def _staff_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.staff import add_staff_arguments

    add_staff_arguments(parser)


def cmd_events(settings: Settings, args: argparse.Namespace) -> None:
    """Event tooling: `asyncapi` prints the AsyncAPI 3.0 document of the event streams."""
    import json

    from activities.events.catalogue import asyncapi_document

    print(json.dumps(asyncapi_document(), indent=2))


def _events_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("asyncapi", help="print the AsyncAPI 3.0 document (docs/asyncapi.json)")


def cmd_legacy(settings: Settings, args: argparse.Namespace) -> None:
    """The legacy monolith simulator: `seed` data into its database, or `serve` its API."""
    if args.action == "serve":
        from cli.legacy import run_legacy

        _run_until_signal(lambda stop: run_legacy(settings, stop))
        return
    from cli.legacy import run_legacy_command

    sys.exit(run_legacy_command(settings, args))


def _legacy_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.legacy import legacy_arguments

    legacy_arguments(parser)


def cmd_legacy_migration(settings: Settings, args: argparse.Namespace) -> None:
    """Drive the per-domain migration workflows; exits 1 when a step is refused."""
    from cli.legacy_migration import run_migration_command

    sys.exit(run_migration_command(settings, args))


def _legacy_migration_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.legacy_migration import migration_arguments

    migration_arguments(parser)


def cmd_reports(settings: Settings, args: argparse.Namespace) -> None:
    """Monthly reports: `backfill --month YYYY-MM` runs a month's reports for every customer."""
    from cli.reports import run_reports_command

    sys.exit(run_reports_command(settings, args))


def _reports_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.reports import reports_arguments

    reports_arguments(parser)


COMMANDS: dict[str, tuple[Callable[[Settings, argparse.Namespace], None], str]] = {
    "dev": (cmd_dev, "everything on embedded services (Temporal + UI, PostgreSQL, Redis)"),
    "api": (cmd_api, "run the HTTP API only"),
    "worker": (cmd_worker, "run the Temporal workers and the outbox relay"),
    "relay": (cmd_relay, "run the outbox relay only (outbox -> Redis streams)"),
    "migrate": (cmd_migrate, "apply database migrations"),
    "rail": (cmd_rail, "run the payment rail simulator only"),
    "codec-server": (cmd_codec_server, "decrypt payloads for staff in the Temporal UI / CLI"),
    "schedules": (cmd_schedules, "create or update the Temporal Schedules (idempotent)"),
    "ledger": (cmd_ledger, "ledger maintenance: `vortex ledger verify|fund`"),
    "users": (cmd_users, "ops: `vortex users disable|enable EMAIL --reason ...`"),
    "payments": (cmd_payments, "payment ops: `vortex payments reconcile|resolve <id>`"),
    "staff": (cmd_staff, "ops: `vortex staff grant|revoke --email ... --role ...`"),
    "events": (cmd_events, "event tooling: `vortex events asyncapi`"),
    "watch": (cmd_watch, "ops: print a customer's live events (`--email ... --reason ...`)"),
    "legacy": (cmd_legacy, "the legacy monolith simulator: `vortex legacy seed|serve`"),
    "legacy-migration": (
        cmd_legacy_migration,
        "ops: `vortex legacy-migration start|status|pause|resume|cutover|rollback DOMAIN`",
    ),
    "reports": (cmd_reports, "monthly reports: `vortex reports backfill --month 2026-11`"),
}


def cmd_gateway(settings: Settings, args: argparse.Namespace) -> None:
    """The strangler-fig gateway: serve it, manage its routes, or print its Kong config."""
    if args.action == "serve":
        from cli.gateway import serve

        _run_until_signal(lambda stop: serve(settings, stop), fast_loop=True)
        return
    from cli.gateway import run_gateway_command

    sys.exit(run_gateway_command(settings, args))


def _gateway_arguments(parser: argparse.ArgumentParser) -> None:
    from cli.gateway import add_gateway_arguments

    add_gateway_arguments(parser)


COMMANDS["gateway"] = (cmd_gateway, "strangler-fig gateway: `vortex gateway serve|routes|kong`")

# Commands that take arguments of their own.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "ledger": _ledger_arguments,
    "users": _users_arguments,
    "payments": _payments_arguments,
    "staff": _staff_arguments,
    "events": _events_arguments,
    "watch": _watch_arguments,
    "reports": _reports_arguments,
}


def _dev_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo", action="store_true", help="seed a demo customer with accounts and history"
    )
    parser.add_argument(
        "--legacy", action="store_true", help="also run the legacy monolith simulator"
    )


ARGUMENTS["dev"] = _dev_arguments
ARGUMENTS["legacy"] = _legacy_arguments
ARGUMENTS["legacy-migration"] = _legacy_migration_arguments


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-relay", action="store_true", help="do not run the outbox relay in this process"
    )


ARGUMENTS["worker"] = _worker_arguments
ARGUMENTS["gateway"] = _gateway_arguments


def cmd_llmsim(settings: Settings, args: argparse.Namespace) -> None:
    """Serve the bundled OpenAI-compatible LLM simulator alone."""
    from cli.llmsim import run_llmsim

    _run_until_signal(lambda stop: run_llmsim(settings, stop, args.port))


def _llmsim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8110, help="port to listen on (8110)")


COMMANDS["llmsim"] = (cmd_llmsim, "run the OpenAI-compatible LLM simulator (tests, trying AI)")
ARGUMENTS["llmsim"] = _llmsim_arguments


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vortex` console script."""
    parser = argparse.ArgumentParser(prog="vortex", description="VortexCore banking backend")
    sub = parser.add_subparsers(dest="command", required=True)
    words = sys.argv[1:] if argv is None else argv
    # Only the chosen command's arguments are built: several builders import their command's
    # whole module (the API, the legacy simulator), seconds of imports no other command needs.
    chosen = next((word for word in words if not word.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text)
        if name == chosen and name in ARGUMENTS:
            ARGUMENTS[name](command_parser)
    args = parser.parse_args(words)
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    install_tracing(settings, args.command)  # only with VORTEX_OTLP_ENDPOINT set
    COMMANDS[args.command][0](settings, args)


if __name__ == "__main__":
    main(sys.argv[1:])
