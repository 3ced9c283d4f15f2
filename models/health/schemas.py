"""The answer of `/health/dependencies` (the seed plan's `ServiceHealth` shape)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

HealthStatus = Literal["up", "degraded", "down"]
DetailValue = str | int | float | bool | None


class DependencyHealth(BaseModel):
    """One dependency as this process sees it now."""

    name: str
    status: HealthStatus
    response_time_ms: float = Field(ge=0, description="time the probe took (to its timeout)")
    last_check: datetime
    details: dict[str, DetailValue] = Field(default_factory=dict)


class BreakerHealth(BaseModel):
    """A circuit breaker of this process (breakers are per process)."""

    name: str
    state: Literal["closed", "half-open", "open"]
    failures: int = Field(ge=0, description="consecutive failures counted while closed")
    retry_after_seconds: float = Field(ge=0, description="until a trial call (open only)")
    failure_threshold: int
    recovery_seconds: float


class ServiceHealth(BaseModel):
    """The service's health: `down` when PostgreSQL, Redis or Temporal is down, `degraded`
    when any other dependency is down or slow or a breaker is not closed, else `up`."""

    service: str
    status: HealthStatus
    response_time_ms: float = Field(ge=0)
    last_check: datetime
    cached: bool = Field(description="served from the short cache (health_cache_seconds)")
    dependencies: list[DependencyHealth]
    breakers: list[BreakerHealth]
