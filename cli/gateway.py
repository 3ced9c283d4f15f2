"""`vortex gateway serve | routes list|add|set|delete | kong`: the strangler-fig gateway."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `vortex --help` builds every parser: the heavy imports wait for a command
    from core.settings import Settings
    from models.gateway.payloads import RouteRecord


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vortex gateway`."""
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("serve", help="run the gateway (VORTEX_GATEWAY_PORT)")
    actions.add_parser("kong", help="print the Kong declarative config (decK) for the table")
    routes = actions.add_parser("routes", help="show or change the routing table (audited)")
    ops = routes.add_subparsers(dest="op", required=True)
    ops.add_parser("list", help="every route, longest prefix first").add_argument(
        "--json", action="store_true"
    )
    for name, help_text in (
        ("add", "add a route (refused if the prefix exists)"),
        ("set", "add or change a route"),
    ):
        op = ops.add_parser(name, help=help_text)
        op.add_argument("prefix", help="path prefix, e.g. /api/accounts")
        op.add_argument("mode", help="legacy | new | shadow | canary | cohort")
        op.add_argument("--percent", type=int, default=0, help="canary: share sent to new")
        op.add_argument("--cohort", default="", help="cohort: comma-separated user ids")
        op.add_argument("--freeze-legacy-writes", action="store_true")
        op.add_argument("--reason", default="")
    delete = ops.add_parser("delete", help="remove a route")
    delete.add_argument("prefix")
    delete.add_argument("--reason", default="")


def _line(r: RouteRecord) -> str:
    from models.gateway.tables import RouteMode

    extra = ""
    if r.mode == RouteMode.CANARY:
        extra = f" {r.canary_percent}%"
    elif r.mode == RouteMode.COHORT:
        extra = f" {len(r.cohort)} users"
    frozen = " legacy-writes-frozen" if r.legacy_writes_frozen else ""
    return (
        f"{r.prefix:<40} {r.mode}{extra}{frozen}  ({r.updated_by}, {r.updated_at:%Y-%m-%d %H:%M})"
    )


async def _routes(settings: Settings, args: argparse.Namespace) -> int:
    from core.db import create_engine, create_session_factory, transaction
    from core.errors import AppError
    from gateway import admin
    from models.gateway.payloads import SetRouteInput

    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        async with transaction(create_session_factory(engine)) as session:
            if args.op == "list":
                rows = await admin.list_routes(session)
                if args.json:
                    print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
                else:
                    for r in rows:
                        print(_line(r))
                    print("(no row matches: legacy answers)")
                return 0
            if args.op == "delete":
                gone = await admin.delete_route(session, args.prefix, reason=args.reason)
                print(f"deleted {gone.prefix} ({gone.mode})")
                return 0
            done = await admin.set_route(
                session,
                SetRouteInput(
                    prefix=args.prefix,
                    mode=args.mode,
                    canary_percent=args.percent,
                    cohort=[c for c in args.cohort.split(",") if c.strip()],
                    legacy_writes_frozen=args.freeze_legacy_writes,
                    replace=args.op == "set",
                    reason=args.reason,
                ),
            )
            print(_line(done))
            return 0
    except AppError as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()


async def _kong(settings: Settings) -> int:
    from core.db import create_engine, create_session_factory, transaction
    from gateway import admin
    from gateway.kong import kong_config, kong_yaml
    from gateway.routing import Route, RouteTable
    from models.gateway.tables import RouteMode

    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        async with transaction(create_session_factory(engine)) as session:
            rows = await admin.list_routes(session)
    finally:
        await engine.dispose()
    table = RouteTable.of(
        [
            Route(
                prefix=r.prefix,
                mode=RouteMode(r.mode),
                canary_percent=r.canary_percent,
                cohort=frozenset(str(c) for c in r.cohort),
                legacy_writes_frozen=r.legacy_writes_frozen,
            )
            for r in rows
        ]
    )
    config = kong_config(
        table,
        legacy_url=settings.gateway_legacy_url,
        new_url=settings.gateway_new_url,
        connect_timeout_ms=int(settings.gateway_connect_timeout_seconds * 1000),
        read_timeout_ms=int(settings.gateway_read_timeout_seconds * 1000),
    )
    sys.stdout.write(kong_yaml(config))
    return 0


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the gateway until `stop` is set."""
    import uvicorn

    from core.http_server import server_config
    from gateway.app import Gateway

    config = server_config(
        Gateway(settings),
        host=settings.api_host,
        port=settings.gateway_port,
        lifespan="on",
        timeout_keep_alive=30,
        # The upstream's Date and Server pass through; uvicorn's own would be duplicates.
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    serving = asyncio.create_task(server.serve())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopper], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopper.cancel()
    await asyncio.gather(serving, return_exceptions=True)


def run_gateway_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `vortex gateway routes|kong`; an exit code."""
    if args.action == "kong":
        return asyncio.run(_kong(settings))
    return asyncio.run(_routes(settings, args))
