"""The routing table in memory: longest matching prefix, and which side answers a request."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum

from models.gateway.tables import RouteMode

CATCH_ALL = "/"


class Side(StrEnum):
    """An upstream the gateway can send a request to."""

    LEGACY = "legacy"
    NEW = "new"


UPSTREAMS = frozenset(s.value for s in Side)


@dataclass(frozen=True, slots=True)
class Route:
    """One row of `gateway_routes`, as the gateway uses it."""

    prefix: str
    mode: RouteMode
    canary_percent: int = 0
    cohort: frozenset[str] = frozenset()
    legacy_writes_frozen: bool = False


FALLBACK = Route(prefix=CATCH_ALL, mode=RouteMode.LEGACY)  # no row: the monolith answers


def _matches(prefix: str, path: str) -> bool:
    # Segment boundaries: /api/accounts matches /api/accounts and /api/accounts/1, not
    # /api/accountsx.
    if prefix == CATCH_ALL:
        return True
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class RouteTable:
    """An immutable snapshot; the cache swaps in a new one on change."""

    routes: tuple[Route, ...] = ()  # longest prefix first
    version: int = 0

    @classmethod
    def of(cls, routes: list[Route], version: int = 0) -> RouteTable:
        """A table with its routes ordered longest prefix first."""
        return cls(tuple(sorted(routes, key=lambda r: len(r.prefix), reverse=True)), version)

    def match(self, path: str) -> Route:
        """The route with the longest prefix matching `path`; the legacy fallback if none."""
        for route in self.routes:
            if _matches(route.prefix, path):
                return route
        return FALLBACK


def bearer_subject(authorization: str | None) -> str | None:
    """The `sub` claim of a bearer JWT, read without verifying it.

    Only used to pick a side; the upstream still verifies the token, so a forged `sub` can at
    most choose which side rejects it.
    """
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    parts = authorization[7:].strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    sub = payload.get("sub") if isinstance(payload, dict) else None
    return str(sub)[:200] if isinstance(sub, str | int) and str(sub) else None


def bucket(prefix: str, subject: str) -> int:
    """A stable 0-99 bucket for a subject on a route (sha256, so no process seed matters)."""
    digest = hashlib.sha256(f"{prefix}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass(frozen=True, slots=True)
class Decision:
    """Who answers, and whether the other side gets a shadow copy."""

    route: Route
    side: Side
    shadow: bool = False
    reason: str = field(default="")


BY_USER = frozenset({RouteMode.CANARY, RouteMode.COHORT})  # the modes that depend on the caller


def decide(route: Route, *, subject: str | None, client_ip: str | None) -> Decision:
    """The side that answers a request on `route` for this user (or client address)."""
    if route.mode == RouteMode.NEW:
        return Decision(route, Side.NEW, reason="new")
    if route.mode == RouteMode.SHADOW:
        return Decision(route, Side.LEGACY, shadow=True, reason="shadow")
    if route.mode == RouteMode.CANARY:
        who = subject or client_ip or ""
        side = Side.NEW if bucket(route.prefix, who) < route.canary_percent else Side.LEGACY
        return Decision(route, side, reason="canary")
    if route.mode == RouteMode.COHORT:
        side = Side.NEW if subject is not None and subject in route.cohort else Side.LEGACY
        return Decision(route, side, reason="cohort")
    return Decision(route, Side.LEGACY, reason="legacy")


_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|[A-Za-z0-9_-]{22,})$"
)


def path_template(path: str) -> str:
    """The path with id-like segments replaced by {id} (no account numbers or ids stored)."""
    parts = [("{id}" if _ID_SEGMENT.match(p) else p) for p in path.split("/")]
    return "/".join(parts)[:300]
