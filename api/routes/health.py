"""Liveness, readiness, the staff view of every dependency, and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import text

from activities.events.relay import outbox_backlog
from api.deps import ServicesDep
from api.health.gauges import read_payment_gauges
from api.health.probes import HealthCache, cached_health
from api.staff import StaffCaller, require_roles
from models.health.schemas import ServiceHealth
from models.staff.tables import StaffRole

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={
        503: {
            "description": "not ready: `down` names the dependencies that do not answer",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness: PostgreSQL, Redis and Temporal all answer within `health_check_timeout_seconds`
    (probed at once); a 503 with `Retry-After` lists the ones that do not (`down`)."""

    async def database() -> Any:
        async with services.engine.connect() as conn:
            return await conn.scalar(text("SELECT 1"))

    async def temporal() -> Any:
        return await services.temporal.service_client.check_health()

    async def verdict(probe: Awaitable[Any]) -> str:
        try:
            await asyncio.wait_for(probe, timeout=services.settings.health_check_timeout_seconds)
        except Exception as exc:  # any failure means not ready
            return f"unavailable: {type(exc).__name__}"
        return "ok"

    # Concurrently, so a slow dependency costs the answer one timeout, not the sum of them.
    names = ("database", "redis", "temporal")
    answers = await asyncio.gather(
        verdict(database()), verdict(services.redis.ping()), verdict(temporal())
    )
    results = dict(zip(names, answers, strict=True))
    down = [name for name, result in results.items() if result != "ok"]
    if not down:
        return JSONResponse({"status": "ready", "checks": results})
    retry_after = str(services.settings.unavailable_retry_after_seconds)
    return JSONResponse(
        {"status": "unavailable", "down": down, "checks": results},
        status_code=503,
        headers={"Retry-After": retry_after},
    )


@router.get("/health/dependencies")
async def dependencies(
    request: Request,
    staff: Annotated[StaffCaller, Depends(require_roles(StaffRole.OPS, StaffRole.ADMIN))],
    services: ServicesDep,
) -> ServiceHealth:
    """Every dependency's status, response time and last check (PostgreSQL, Redis, Temporal,
    rail, LLM, SMTP) and this process's circuit breakers; staff only. Probes run concurrently,
    each within `health_check_timeout_seconds`; answers are cached `health_cache_seconds`."""
    cache = getattr(request.app.state, "health_cache", None)
    if cache is None:
        cache = request.app.state.health_cache = HealthCache()
    return await cached_health(services, cache)


# Read from the database at scrape time, so they tell the truth whichever process relays, and
# most of all when no relay runs at all.
OUTBOX_BACKLOG = Gauge("vortex_outbox_backlog", "Outbox events not yet published to Redis")
RELAY_LAG = Gauge("vortex_relay_lag_seconds", "Age of the oldest unpublished outbox event")


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics (with the relay's backlog and lag, read from the outbox)."""
    try:
        backlog, lag = await asyncio.wait_for(outbox_backlog(services.read_pool), timeout=2)
    except Exception:  # an unreachable database must not fail the scrape
        backlog, lag = -1, -1.0
    OUTBOX_BACKLOG.set(backlog)
    RELAY_LAG.set(lag)
    with contextlib.suppress(Exception):  # likewise: the gauge keeps its last value
        await asyncio.wait_for(read_payment_gauges(services.read_pool), timeout=2)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
