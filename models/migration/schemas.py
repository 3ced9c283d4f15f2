"""API shapes of the staff migration routes (`/api/staff/migrations`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from models.migration.payloads import MigrationProgress, VerificationReport
from models.migration.tables import MigrationDomain, MigrationStage


class MigrationStatusPublic(BaseModel):
    """One domain's migration: its stored stage and counts (none before it starts) and, while
    its workflow runs, the live progress (rate, ETA, cursors, last verification)."""

    domain: MigrationDomain
    stage: MigrationStage | None
    running: bool
    # Running, but no worker answered the progress query in time: counts are the stored ones.
    progress_unavailable: bool = False
    backfilled: int
    quarantined: int
    started_at: datetime | None
    cutover_at: datetime | None
    progress: MigrationProgress | None


class MigrationStatusList(BaseModel):
    """Every domain, in migration order (users, accounts, transactions)."""

    items: list[MigrationStatusPublic]


class MigrationActionDone(BaseModel):
    """An action taken on a domain's migration."""

    domain: MigrationDomain
    action: str
    outcome: str
    workflow_id: str
    verification: VerificationReport | None = None
