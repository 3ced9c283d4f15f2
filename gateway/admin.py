"""Route-table management: validated, audited changes (`vortex gateway routes ...`).

A change is refused, with a problem that says why, when it names an unknown mode or upstream,
when its prefix is malformed, or when it overlaps an existing prefix: the same prefix (for
`add`), or one that differs only by letter case or a trailing slash (two rows that would fight
over the same requests). Nested prefixes are fine: the longest one wins by design.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import AppError, NotFound
from gateway.routing import CATCH_ALL, UPSTREAMS
from models.audit import record_audit
from models.gateway.payloads import RouteRecord, SetRouteInput
from models.gateway.tables import RouteMode

MAX_COHORT: Final = 10_000
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()+,;=:@%-]+$")
_LIST = text(
    "SELECT prefix, mode, canary_percent, cohort, legacy_writes_frozen, updated_at, updated_by "
    "FROM gateway_routes ORDER BY length(prefix) DESC, prefix"
)
_UPSERT = text(
    "INSERT INTO gateway_routes (prefix, mode, canary_percent, cohort, legacy_writes_frozen, "
    "updated_at, updated_by) VALUES (:prefix, :mode, :pct, CAST(:cohort AS jsonb), :frozen, "
    "now(), :actor) ON CONFLICT (prefix) DO UPDATE SET mode = EXCLUDED.mode, "
    "canary_percent = EXCLUDED.canary_percent, cohort = EXCLUDED.cohort, "
    "legacy_writes_frozen = EXCLUDED.legacy_writes_frozen, updated_at = now(), "
    "updated_by = EXCLUDED.updated_by RETURNING prefix, mode, canary_percent, cohort, "
    "legacy_writes_frozen, updated_at, updated_by"
)
_DELETE = text(
    "DELETE FROM gateway_routes WHERE prefix = :p RETURNING prefix, mode, canary_percent, "
    "cohort, legacy_writes_frozen, updated_at, updated_by"
)


class RouteRefused(AppError):
    """A routing-table change that would be wrong or ambiguous."""

    status, type, title = 422, "gateway-route-refused", "Route refused"


class UnknownRoute(NotFound):
    """No route with that prefix."""

    type, title = "unknown-gateway-route", "Unknown route"


def normalize_prefix(prefix: str) -> str:
    """The prefix as stored: starts with '/', no trailing slash, plain path segments."""
    prefix = prefix.strip()
    if not prefix.startswith("/") or len(prefix) > 200:
        raise RouteRefused(
            "a prefix starts with '/' and has at most 200 characters", prefix=prefix[:200]
        )
    if prefix == CATCH_ALL:
        return prefix
    body = prefix.rstrip("/")
    segments = body.split("/")[1:]
    for segment in segments:
        if not segment or segment in (".", "..") or not _SEGMENT.match(segment):
            raise RouteRefused(
                "a prefix is plain path segments (no empty, '.', '..', '*', '?' or '#')",
                prefix=prefix[:200],
            )
    return body


def _mode(mode: str) -> RouteMode:
    try:
        return RouteMode(mode.strip().lower())
    except ValueError:
        raise RouteRefused(
            f"unknown upstream or mode {mode[:40]!r}",
            allowed=sorted(m.value for m in RouteMode),
            upstreams=sorted(UPSTREAMS),
        ) from None


def _record(row: Any) -> RouteRecord:
    return RouteRecord.model_validate(dict(row._mapping))


async def list_routes(session: AsyncSession) -> list[RouteRecord]:
    """Every route, longest prefix first (the order they are matched in)."""
    rows = await session.execute(_LIST)
    return [_record(r) for r in rows]


async def set_route(session: AsyncSession, req: SetRouteInput) -> RouteRecord:
    """Create or change a route (audited); refuses bad or overlapping entries."""
    prefix = normalize_prefix(req.prefix)
    mode = _mode(req.mode)
    if not 0 <= req.canary_percent <= 100:
        raise RouteRefused("canary_percent is 0 to 100")
    if mode is RouteMode.CANARY and req.canary_percent == 0:
        raise RouteRefused("a canary route needs a canary_percent above 0")
    cohort = sorted({c.strip() for c in req.cohort if c.strip()})
    if mode is RouteMode.COHORT and not cohort:
        raise RouteRefused("a cohort route needs at least one user id")
    if len(cohort) > MAX_COHORT or any(len(c) > 100 for c in cohort):
        raise RouteRefused(f"a cohort holds at most {MAX_COHORT} ids of at most 100 characters")
    # Serialise route changes, so two concurrent `add`s of clashing prefixes cannot both pass.
    await session.execute(text("LOCK TABLE gateway_routes IN SHARE ROW EXCLUSIVE MODE"))
    existing = {r.prefix: r for r in await list_routes(session)}
    clash = next((p for p in existing if p != prefix and p.lower() == prefix.lower()), None)
    if clash is not None:
        raise RouteRefused(
            f"the prefix overlaps the existing route {clash!r} (differs only in letter case)",
            prefix=prefix,
            existing=clash,
        )
    before = existing.get(prefix)
    if before is not None and not req.replace:
        raise RouteRefused(
            f"a route for {prefix!r} exists already (use `routes set` to change it)",
            prefix=prefix,
        )
    row = (
        await session.execute(
            _UPSERT,
            {
                "prefix": prefix,
                "mode": mode.value,
                "pct": req.canary_percent if mode is RouteMode.CANARY else 0,
                "cohort": _json_list(cohort if mode is RouteMode.COHORT else []),
                "frozen": req.legacy_writes_frozen,
                "actor": req.actor[:100],
            },
        )
    ).one()
    after = _record(row)
    await record_audit(
        session,
        "gateway.route_set",
        subject=f"gateway_route:{prefix}",
        client=req.actor[:100],
        details={
            "reason": req.reason,
            "before": _summary(before),
            "after": _summary(after),
        },
    )
    return after


async def delete_route(
    session: AsyncSession, prefix: str, *, actor: str = "cli", reason: str = ""
) -> RouteRecord:
    """Remove a route (its requests fall back to a shorter prefix or legacy); audited."""
    normalized = normalize_prefix(prefix)
    row = (
        await session.execute(
            _DELETE,
            {"p": normalized},
        )
    ).first()
    if row is None:
        raise UnknownRoute(f"no route for {normalized!r}", prefix=normalized)
    gone = _record(row)
    await record_audit(
        session,
        "gateway.route_deleted",
        subject=f"gateway_route:{normalized}",
        client=actor[:100],
        details={"reason": reason, "before": _summary(gone)},
    )
    return gone


def _json_list(values: list[str]) -> str:
    return json.dumps(values)


def _summary(route: RouteRecord | None) -> dict[str, Any] | None:
    # Cohorts can be long: the audit keeps their size, the row keeps the ids.
    if route is None:
        return None
    return {
        "mode": route.mode,
        "canary_percent": route.canary_percent,
        "cohort_size": len(route.cohort),
        "legacy_writes_frozen": route.legacy_writes_frozen,
    }
