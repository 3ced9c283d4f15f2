"""`vortex legacy seed|serve`: the legacy monolith simulator and its data (its own database,
`vortex_legacy` beside ours unless `VORTEX_LEGACY_DATABASE_URL` says otherwise)."""

from __future__ import annotations

import argparse
import asyncio

from cli.runtime import _until_stop_or_failure
from core.logging import get_logger
from core.settings import Settings
from legacysim.app import create_legacy_app
from legacysim.schema import create_schema, ensure_database
from legacysim.seed import seed
from railsim.server import serve_app

log = get_logger("vortex.legacy")


def legacy_arguments(parser: argparse.ArgumentParser) -> None:
    """`seed --users N [--invalid]` and `serve`."""
    actions = parser.add_subparsers(dest="action", required=True)
    seeding = actions.add_parser("seed", help="fill the monolith with realistic data")
    seeding.add_argument("--users", type=int, default=100, help="how many customers")
    seeding.add_argument("--invalid", action="store_true", help="add rows to be quarantined")
    seeding.add_argument("--tag", default="s", help="distinguishes the emails of several seeds")
    seeding.add_argument("--rounds", type=int, default=8, help="bcrypt cost of the seeded hashes")
    actions.add_parser("serve", help="serve the monolith's API on VORTEX_LEGACY_PORT")


async def prepare_legacy(settings: Settings) -> str:
    """Create the monolith's database and schema if missing; returns its URL."""
    url = settings.effective_legacy_database_url
    await ensure_database(url)
    await create_schema(url)
    return url


async def run_legacy(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the monolith simulator until `stop` is set."""
    url = await prepare_legacy(settings)
    app = create_legacy_app(url)
    async with serve_app(app, host=settings.api_host, port=settings.legacy_port) as served:
        log.info("legacy monolith simulator ready", url=served.url)
        await _until_stop_or_failure(stop, [served.task])


async def _seed(settings: Settings, args: argparse.Namespace) -> int:
    url = await prepare_legacy(settings)
    result = await seed(
        url, users=args.users, tag=args.tag, invalid=args.invalid, rounds=args.rounds
    )
    print(
        f"seeded {result.users} users, {result.accounts} accounts, "
        f"{result.transactions} transactions, {result.invalid} invalid rows"
    )
    if result.credentials:
        email, password = result.credentials[0]
        print(f"e.g. {email} / {password} (user N: old-{args.tag}-password-N)")
    return 0


def run_legacy_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `vortex legacy seed` (serve runs until a signal, see cli.main)."""
    return asyncio.run(_seed(settings, args))
