"""The routing table: live changes through NOTIFY, refused entries, the audit trail, the CLI,
and the Kong configuration generated from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from cli.gateway import _kong as kong_command
from core.db import SessionFactory, transaction
from core.settings import Settings
from gateway import admin
from gateway.admin import RouteRefused, UnknownRoute
from gateway.kong import kong_config, kong_yaml
from gateway.routing import Route, RouteTable
from models.gateway.payloads import SetRouteInput
from models.gateway.tables import RouteMode
from tests.cli_support import run_vortex
from tests.gateway_support import gateway_env, put_route, wait_until

ROOT = Path(__file__).resolve().parent.parent


async def test_a_route_change_reaches_a_running_gateway_through_notify(
    settings: Settings, sessions: SessionFactory
) -> None:
    async with gateway_env(settings) as env:  # TTL of an hour: only the NOTIFY can refresh
        await wait_until(lambda: _true(env.gateway.routes.listening.is_set()), "LISTEN")
        assert (await env.client.get("/api/accounts")).json()["side"] == "legacy"

        await put_route(sessions, "/api/accounts", "new")

        async def on_new() -> bool:
            return bool((await env.client.get("/api/accounts")).json()["side"] == "new")

        await wait_until(on_new, "the gateway to route /api/accounts to new")
        async with transaction(sessions) as session:
            await admin.delete_route(session, "/api/accounts")

        async def back() -> bool:
            return bool((await env.client.get("/api/accounts")).json()["side"] == "legacy")

        await wait_until(back, "the deleted route to fall back to legacy")


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prefix": "/api/x", "mode": "mainframe"}, "unknown upstream or mode"),
        ({"prefix": "api/x", "mode": "new"}, "starts with '/'"),
        ({"prefix": "/api/*", "mode": "new"}, "plain path segments"),
        ({"prefix": "/api//x", "mode": "new"}, "plain path segments"),
        ({"prefix": "/api/../x", "mode": "new"}, "plain path segments"),
        ({"prefix": "/api/x", "mode": "canary"}, "canary_percent above 0"),
        ({"prefix": "/api/x", "mode": "canary", "canary_percent": 101}, "0 to 100"),
        ({"prefix": "/api/x", "mode": "cohort"}, "at least one user id"),
        ({"prefix": "/API/Accounts", "mode": "new"}, "overlaps the existing route"),
        ({"prefix": "/api/accounts/", "mode": "new", "replace": False}, "exists already"),
    ],
)
async def test_bad_or_overlapping_routes_are_refused_and_change_nothing(
    sessions: SessionFactory, change: dict[str, Any], message: str
) -> None:
    await put_route(sessions, "/api/accounts", "legacy")
    async with transaction(sessions) as session:
        before = await admin.list_routes(session)

    with pytest.raises(RouteRefused) as refused:
        async with transaction(sessions) as session:
            await admin.set_route(session, SetRouteInput(**change))

    assert message in refused.value.detail
    async with transaction(sessions) as session:
        assert await admin.list_routes(session) == before


async def test_route_changes_are_audited_and_nested_prefixes_are_allowed(
    sessions: SessionFactory,
) -> None:
    await put_route(sessions, "/api", "legacy")
    await put_route(sessions, "/api/accounts/", "canary", canary_percent=10, reason="phase 2")
    async with transaction(sessions) as session:
        await admin.delete_route(session, "/api", reason="done")
        with pytest.raises(UnknownRoute):
            await admin.delete_route(session, "/nothing-here")
        routes = await admin.list_routes(session)
    assert [(r.prefix, r.mode, r.canary_percent) for r in routes] == [
        ("/api/accounts", "canary", 10)
    ]
    async with sessions() as session:
        audit = (
            await session.execute(
                text("SELECT action, subject, details FROM audit_log ORDER BY id")
            )
        ).all()
    assert [(a.action, a.subject) for a in audit] == [
        ("gateway.route_set", "gateway_route:/api"),
        ("gateway.route_set", "gateway_route:/api/accounts"),
        ("gateway.route_deleted", "gateway_route:/api"),
    ]
    assert audit[1].details["after"]["canary_percent"] == 10
    assert audit[1].details["reason"] == "phase 2"


async def test_the_cli_sets_and_refuses_routes_and_prints_the_kong_config(
    settings: Settings, sessions: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await run_vortex(
        settings, "gateway", "routes", "set", "/api/accounts", "cohort", "--cohort", "u1,u2"
    )
    assert code == 0, out
    assert "/api/accounts" in out
    assert "2 users" in out
    code, out = await run_vortex(settings, "gateway", "routes", "add", "/api/x", "mainframe")
    assert code == 2
    assert "refused: unknown upstream or mode 'mainframe'" in out
    assert await kong_command(settings) == 0  # in-process: a third subprocess costs seconds
    deck = yaml.safe_load(capsys.readouterr().out)
    routes_by_name = {r["name"]: r for r in _validate_deck(deck)}
    assert routes_by_name["route-api-accounts"]["tags"] == ["mode-cohort", "needs-vortex-gateway"]
    async with transaction(sessions) as session:
        routes = await admin.list_routes(session)
    assert [(r.prefix, r.mode, r.cohort) for r in routes] == [
        ("/api/accounts", "cohort", ["u1", "u2"])
    ]


def _validate_deck(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The decK structure Kong 3 DB-less loads: services with routes, upstreams with targets;
    every service host is a declared upstream. Returns all routes."""
    assert doc["_format_version"] == "3.0"
    upstreams = {u["name"]: u for u in doc["upstreams"]}
    routes = []
    names = set()
    for service in doc["services"]:
        assert set(service) >= {"name", "protocol", "host", "port", "routes"}
        assert service["protocol"] in ("http", "https")
        assert service["host"] in upstreams
        for route in service["routes"]:
            assert route["name"] not in names
            names.add(route["name"])
            assert route["paths"]
            assert all(p.startswith(("/", "~/")) for p in route["paths"])
            routes.append({**route, "service": service["name"]})
    for upstream in upstreams.values():
        assert upstream["targets"]
        assert all(":" in t["target"] and t["weight"] >= 0 for t in upstream["targets"])
    return routes


def test_the_kong_config_maps_every_mode_and_keeps_the_legacy_fallback() -> None:
    table = RouteTable.of(
        [
            Route("/api/accounts", RouteMode.NEW),
            Route("/api/transactions", RouteMode.CANARY, canary_percent=25),
            Route("/api/auth", RouteMode.SHADOW),
            Route("/api/cards", RouteMode.COHORT, cohort=frozenset({"u1"})),
            Route("/api/legacy", RouteMode.LEGACY, legacy_writes_frozen=True),
        ]
    )
    text_ = kong_yaml(
        kong_config(table, legacy_url="http://legacy:8200", new_url="http://api:8000")
    )
    doc = yaml.safe_load(text_)

    routes = {r["name"]: r for r in _validate_deck(doc)}
    assert routes["route-api-accounts"]["service"] == "new"
    assert routes["route-api-accounts"]["paths"] == ["~/api/accounts$", "/api/accounts/"]
    assert routes["route-root"]["service"] == "legacy"  # no row: the monolith answers
    assert "needs-vortex-gateway" in routes["route-api-auth"]["tags"]
    assert routes["route-api-cards"]["service"] == "legacy"
    frozen = routes["route-api-legacy-frozen-writes"]
    assert frozen["methods"] == ["POST", "PUT", "PATCH", "DELETE"]
    assert frozen["plugins"][0]["config"]["status_code"] == 409
    canary = next(u for u in doc["upstreams"] if u["name"] == "canary-api-transactions-upstream")
    assert [t["weight"] for t in canary["targets"]] == [750, 250]
    assert canary["hash_on_header"] == "authorization"


def test_compose_runs_kong_db_less_on_the_shipped_config() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    kong = compose["services"]["kong"]
    assert kong["environment"]["KONG_DATABASE"] == "off"
    mount = next(v for v in kong["volumes"] if "kong.yaml" in v)
    source, target = mount.split(":")[:2]
    assert target == kong["environment"]["KONG_DECLARATIVE_CONFIG"]
    shipped = (ROOT / source).read_text()
    _validate_deck(yaml.safe_load(shipped))
    # The shipped file is what `vortex gateway kong` prints for an empty table.
    assert shipped == kong_yaml(
        kong_config(RouteTable(), legacy_url="http://legacy:8200", new_url="http://api:8000")
    )
