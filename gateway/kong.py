"""Kong declarative configuration (decK, `_format_version: "3.0"`) from the routing table.

Production runs Kong DB-less with this file mounted; regenerate it after a route change
(`vortex gateway kong > deploy/kong.yaml`) and reload Kong. What maps how:

- `legacy` / `new`: a route on the `legacy` or `new` service.
- `canary`: a route on its own service whose upstream holds both targets weighted
  `100 - p : p`, with consistent hashing on the Authorization header (fallback: client IP),
  so a user stays on one side, as with the built-in gateway (not the same hash, so not the same
  users).
- `shadow` and `cohort`: Kong OSS cannot copy a request to a second upstream nor read a JWT's
  `sub` without custom plugins, so they map to `legacy` (the side that answers in shadow mode
  anyway) and are tagged `needs-vortex-gateway`: run the built-in gateway for those phases.
- `legacy_writes_frozen` on a route answered by legacy: a second route for the write methods
  with the `request-termination` plugin (409).

Paths keep the gateway's segment-boundary semantics: `~<prefix>$` (Kong 3 regex paths are
marked by `~`) for the prefix itself and the plain prefix `<prefix>/` for what is below it;
Kong prefers the longest plain prefix, and `regex_priority` orders the regex ones by length.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.routing import CATCH_ALL, Route, RouteTable, Side
from models.gateway.tables import RouteMode

_WRITES = ["POST", "PUT", "PATCH", "DELETE"]


def _target(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname or "localhost", port


def _slug(prefix: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-") or "root"


def _paths(prefix: str) -> list[str]:
    if prefix == CATCH_ALL:
        return ["/"]
    return [f"~{re.escape(prefix)}$", f"{prefix}/"]


def kong_config(
    table: RouteTable,
    *,
    legacy_url: str,
    new_url: str,
    connect_timeout_ms: int = 3000,
    read_timeout_ms: int = 30000,
) -> dict[str, Any]:
    """The decK document for this table (a plain dict; `kong_yaml` renders it)."""
    targets = {Side.LEGACY: _target(legacy_url), Side.NEW: _target(new_url)}
    upstreams: list[dict[str, Any]] = []
    services: dict[str, dict[str, Any]] = {}

    def service(name: str, host: str, scheme: str, port: int) -> dict[str, Any]:
        return services.setdefault(
            name,
            {
                "name": name,
                "protocol": scheme,
                "host": host,
                "port": port,
                "connect_timeout": connect_timeout_ms,
                "read_timeout": read_timeout_ms,
                "write_timeout": read_timeout_ms,
                "retries": 0,  # Kong would retry any method; the clients use idempotency keys
                "routes": [],
            },
        )

    for side in (Side.LEGACY, Side.NEW):
        scheme, host, port = targets[side]
        upstreams.append(
            {
                "name": f"{side.value}-upstream",
                "targets": [{"target": f"{host}:{port}", "weight": 100}],
            }
        )
        service(side.value, f"{side.value}-upstream", scheme, port)

    routes = list(table.routes)
    if not any(r.prefix == CATCH_ALL for r in routes):
        routes.append(Route(prefix=CATCH_ALL, mode=RouteMode.LEGACY))  # the monolith's fallback
    for route in routes:
        slug = _slug(route.prefix)
        tags = [f"mode-{route.mode.value}"]
        base = {
            "paths": _paths(route.prefix),
            "strip_path": False,
            "preserve_host": False,
            "regex_priority": len(route.prefix),
        }
        if route.mode is RouteMode.NEW:
            owner = services[Side.NEW.value]
        elif route.mode is RouteMode.CANARY:
            name = f"canary-{slug}"
            upstreams.append(
                {
                    "name": f"{name}-upstream",
                    "hash_on": "header",
                    "hash_on_header": "authorization",
                    "hash_fallback": "ip",
                    "targets": [
                        {
                            "target": "{}:{}".format(*targets[Side.LEGACY][1:]),
                            "weight": max(0, 100 - route.canary_percent) * 10,
                        },
                        {
                            "target": "{}:{}".format(*targets[Side.NEW][1:]),
                            "weight": route.canary_percent * 10,
                        },
                    ],
                }
            )
            scheme = targets[Side.LEGACY][0]
            owner = service(name, f"{name}-upstream", scheme, targets[Side.LEGACY][2])
        else:
            owner = services[Side.LEGACY.value]
            if route.mode in (RouteMode.SHADOW, RouteMode.COHORT):
                tags.append("needs-vortex-gateway")
        owner["routes"].append({"name": f"route-{slug}", **base, "tags": tags})
        if route.legacy_writes_frozen and owner is services[Side.LEGACY.value]:
            owner["routes"].append(
                {
                    "name": f"route-{slug}-frozen-writes",
                    **base,
                    "methods": _WRITES,
                    "regex_priority": len(route.prefix) + 1,
                    "tags": [*tags, "legacy-writes-frozen"],
                    "plugins": [
                        {
                            "name": "request-termination",
                            "config": {
                                "status_code": 409,
                                "message": "this route was cut over; legacy takes no writes",
                            },
                        }
                    ],
                }
            )
    return {
        "_format_version": "3.0",
        "_transform": True,
        "services": list(services.values()),
        "upstreams": upstreams,
    }


def kong_yaml(config: dict[str, Any]) -> str:
    """The document as YAML, with a header saying where it came from."""
    header = "# Generated by `vortex gateway kong` from gateway_routes; do not edit by hand.\n"
    body: str = yaml.safe_dump(config, sort_keys=False)
    return header + body
