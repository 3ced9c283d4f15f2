"""Probes of every dependency for `/health/dependencies`: run concurrently, each within its own
timeout, so one hanging dependency costs the answer that timeout and nothing more.

A probe returns details (or raises); `check_all` times it and grades it: an exception or the
timeout is `down`, an answer slower than `health_slow_ms` is `degraded`, and so is a dependency
whose circuit breaker is not closed. The result is cached for `health_cache_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from api.services import Services
from core.breakers import BreakerState, breaker_states
from models.health.schemas import (
    BreakerHealth,
    DependencyHealth,
    DetailValue,
    HealthStatus,
    ServiceHealth,
)

Details = dict[str, DetailValue]
Probe = Callable[[], Awaitable[Details]]
CORE = frozenset({"postgresql", "redis", "temporal"})  # without these nothing works: `down`
SERVICE = "vortexcore-api"


def _endpoint(url: str) -> str:
    """The URL without credentials, path or query (safe to show)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


class Probes:
    """One probe per dependency of this process."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings

    def all(self) -> dict[str, Probe]:
        """Dependency name -> probe, in the order of the report."""
        return {
            "postgresql": self.postgresql,
            "redis": self.redis,
            "temporal": self.temporal,
            "rail": self.rail,
            "llm": self.llm,
            "smtp": self.smtp,
        }

    async def postgresql(self) -> Details:
        """`SELECT 1` through the API's pool."""
        async with self.services.engine.connect() as conn:
            await conn.scalar(text("SELECT 1"))
        pool = self.services.engine.pool
        return {"pool_checked_out": int(getattr(pool, "checkedout", lambda: 0)())}

    async def redis(self) -> Details:
        """PING."""
        await self.services.redis.ping()
        return {}

    async def temporal(self) -> Details:
        """The frontend's gRPC health check."""
        await self.services.temporal.service_client.check_health()
        return {
            "namespace": self.settings.temporal_namespace,
            "address": self.services.temporal.service_client.config.target_host,
        }

    async def rail(self) -> Details:
        """GET <rail>/health (the payment provider's status endpoint)."""
        url = self.settings.rail_url.rstrip("/")
        return {"endpoint": _endpoint(url), **await self._http(url + "/health")}

    async def llm(self) -> Details:
        """GET <base_url>/models of the configured OpenAI-compatible endpoint; with none
        configured the bundled local engine answers in-process."""
        base = self.settings.llm_base_url
        if not base:
            return {"endpoint": "local engine"}
        token = self.settings.llm_api_key.get_secret_value()
        details = await self._http(base.rstrip("/") + "/models", bearer=token)
        return {"endpoint": _endpoint(base), **details}

    async def smtp(self) -> Details:
        """Connect and read the server's 220 greeting (then QUIT); other backends need none."""
        s = self.settings
        if s.email_backend != "smtp":
            return {"backend": s.email_backend}
        reader, writer = await asyncio.open_connection(s.smtp_host, s.smtp_port)
        try:
            greeting = (await reader.readline()).decode("ascii", "replace").strip()
            if not greeting.startswith("220"):
                raise ConnectionError(f"unexpected greeting: {greeting[:80]!r}")
            writer.write(b"QUIT\r\n")
            await writer.drain()
        finally:
            writer.close()
        return {"backend": "smtp", "endpoint": f"{s.smtp_host}:{s.smtp_port}"}

    async def _http(self, url: str, bearer: str | None = None) -> Details:
        headers = {"User-Agent": "vortexcore-health/1"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        timeout = self.settings.health_check_timeout_seconds
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            answer = await client.get(url)
        if answer.status_code >= 500:
            raise ConnectionError(f"answered {answer.status_code}")
        return {"http_status": answer.status_code}


@dataclass
class HealthCache:
    """The last report of this process and when it was made (monotonic seconds)."""

    report: ServiceHealth | None = None
    made_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _run(name: str, probe: Probe, limit: float, slow_ms: float) -> DependencyHealth:
    started = time.perf_counter()
    status: HealthStatus = "up"
    try:
        async with asyncio.timeout(limit):
            details = await probe()
    except TimeoutError:
        status, details = "down", {"error": f"no answer within {limit:g}s"}
    except Exception as exc:  # any failure of a probe is that dependency being down
        status, details = "down", {"error": f"{type(exc).__name__}: {exc}"[:300]}
    elapsed_ms = (time.perf_counter() - started) * 1000
    if status == "up" and elapsed_ms > slow_ms:
        status, details = "degraded", {**details, "slow": True}
    return DependencyHealth(
        name=name,
        status=status,
        response_time_ms=round(elapsed_ms, 2),
        last_check=datetime.now(UTC),
        details=details,
    )


def _with_breaker(dep: DependencyHealth, breaker: BreakerState | None) -> DependencyHealth:
    if breaker is None:
        return dep
    details: Details = {**dep.details, "breaker": breaker.state}
    status: HealthStatus = dep.status
    if status == "up" and breaker.state != "closed":
        status = "degraded"
    return dep.model_copy(update={"status": status, "details": details})


def _overall(deps: list[DependencyHealth]) -> HealthStatus:
    if any(d.status == "down" and d.name in CORE for d in deps):
        return "down"
    return "up" if all(d.status == "up" for d in deps) else "degraded"


async def check_all(services: Services) -> ServiceHealth:
    """Probe every dependency concurrently and grade the whole."""
    s = services.settings
    started = time.perf_counter()
    probes = Probes(services).all()
    deps = await asyncio.gather(
        *(
            _run(name, probe, s.health_check_timeout_seconds, s.health_slow_ms)
            for name, probe in probes.items()
        )
    )
    breakers = {b.name: b for b in breaker_states()}
    deps = [_with_breaker(d, breakers.get(d.name)) for d in deps]
    return ServiceHealth(
        service=SERVICE,
        status=_overall(deps),
        response_time_ms=round((time.perf_counter() - started) * 1000, 2),
        last_check=datetime.now(UTC),
        cached=False,
        dependencies=deps,
        breakers=[
            BreakerHealth(
                name=b.name,
                state=b.state,
                failures=b.failures,
                retry_after_seconds=round(max(0.0, b.retry_after), 3),
                failure_threshold=b.failure_threshold,
                recovery_seconds=b.recovery_seconds,
            )
            for b in breakers.values()
        ],
    )


async def cached_health(services: Services, cache: HealthCache) -> ServiceHealth:
    """The report, from the cache while it is fresh (one probe round at a time)."""
    ttl = services.settings.health_cache_seconds
    async with cache.lock:
        if cache.report is not None and time.monotonic() - cache.made_at < ttl:
            return cache.report.model_copy(update={"cached": True})
        cache.report = await check_all(services)
        cache.made_at = time.monotonic()
        return cache.report
