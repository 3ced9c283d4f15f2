"""What the gateway's route management takes and gives (CLI and the migration's cutover)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class SetRouteInput(BaseModel):
    """Create or change one route. `mode` is the upstream or mix that answers the prefix."""

    prefix: str
    mode: str
    canary_percent: int = 0
    cohort: list[str] = Field(default_factory=list)
    legacy_writes_frozen: bool = False
    replace: bool = True  # False: refuse a prefix that exists already (`routes add`)
    actor: str = "cli"  # who changes it (kept in the row and the audit log)
    reason: str = ""


class RouteRecord(BaseModel):
    """One row of the routing table."""

    prefix: str
    mode: str
    canary_percent: int
    cohort: list[Any]
    legacy_writes_frozen: bool
    updated_at: datetime
    updated_by: str
