"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import ServicesDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness: PostgreSQL, Redis and Temporal all answer within two seconds; a 503 with
    `Retry-After` lists the ones that do not (`down`)."""

    async def database() -> Any:
        async with services.engine.connect() as conn:
            return await conn.scalar(text("SELECT 1"))

    async def temporal() -> Any:
        return await services.temporal.service_client.check_health()

    checks = {"database": database(), "redis": services.redis.ping(), "temporal": temporal()}
    results: dict[str, str] = {}
    for name, probe in checks.items():
        try:
            await asyncio.wait_for(probe, timeout=2)
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready
            results[name] = f"unavailable: {type(exc).__name__}"
    down = [name for name, result in results.items() if result != "ok"]
    if not down:
        return JSONResponse({"status": "ready", "checks": results})
    retry_after = str(services.settings.unavailable_retry_after_seconds)
    return JSONResponse(
        {"status": "unavailable", "down": down, "checks": results},
        status_code=503,
        headers={"Retry-After": retry_after},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
