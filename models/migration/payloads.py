"""Workflow and activity payloads of the migration: ids, counts and cursors only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from models.migration.tables import MigrationDomain, MigrationStage


class MigrationInput(BaseModel):
    """Start (or continue as new) one domain's migration; cursors and counts carry over."""

    domain: MigrationDomain
    batch_size: int = 200
    rows_per_second: float = 500.0
    cdc_poll_seconds: float = 2.0
    batches_per_run: int = 200  # continue as new after this many batches
    sample_size: int = 20
    shadow_diff_threshold: float = 0.01
    activity_timeout_seconds: float = 60.0
    # carried across continue-as-new
    started: bool = False
    stage: MigrationStage = MigrationStage.BACKFILLING
    backfill_cursor: int = 0
    cdc_cursor: int = 0
    total_estimate: int = 0
    backfilled: int = 0
    quarantined: int = 0
    applied_events: int = 0
    started_at: datetime | None = None
    paused: bool = False


class StartRunInput(BaseModel):
    """Record a domain's run (refused unless the previous domain is cut over)."""

    domain: MigrationDomain
    workflow_id: str


class StartedRun(BaseModel):
    """Where change-data-capture starts (events before it are covered by the backfill), and
    how many legacy rows the backfill expects."""

    cdc_cursor: int
    total_estimate: int


class StageInput(BaseModel):
    """Record a run's stage."""

    domain: MigrationDomain
    stage: MigrationStage


class BatchInput(BaseModel):
    """One backfill batch: legacy rows with id > `after_id`, at most `limit` of them."""

    domain: MigrationDomain
    after_id: int
    limit: int


class BatchResult(BaseModel):
    """What a batch did; `last_id` is the next cursor, `done` when no row was left. The totals
    are counted from the identity map and the quarantine, so a retried batch never adds twice."""

    last_id: int
    read: int
    done: bool
    migrated_total: int
    quarantined_total: int


class ChangesInput(BaseModel):
    """One change-data-capture batch: events with id > `after_event`."""

    domain: MigrationDomain
    after_event: int
    limit: int


class ChangesResult(BaseModel):
    """Events seen and applied; `more` when the batch was full."""

    last_event: int
    seen: int
    more: bool
    applied_total: int
    migrated_total: int
    quarantined_total: int


class VerifyInput(BaseModel):
    """Compare the two sides of a domain."""

    domain: MigrationDomain
    sample_size: int = 20
    shadow_diff_threshold: float = 0.01


class CheckResult(BaseModel):
    """One verification check: `passed`, `failed` or `skipped` (with why)."""

    name: str
    outcome: str
    detail: str = ""


class VerificationReport(BaseModel):
    """All checks of a domain; `ok` when none failed."""

    domain: MigrationDomain
    ok: bool
    checks: list[CheckResult] = Field(default_factory=list)


class FreezeInput(BaseModel):
    """Freeze (or thaw) legacy writes of a domain, on both sides of the gateway."""

    domain: MigrationDomain
    frozen: bool


class CutoverInput(BaseModel):
    """Flip a domain's routes to the new platform (legacy writes stay frozen)."""

    domain: MigrationDomain


class RollbackInput(BaseModel):
    """Route a domain back to the monolith, if no write happened on the new side yet."""

    domain: MigrationDomain


class RollbackResult(BaseModel):
    """Whether the rollback happened; `reason` when refused (past the point of no return)."""

    rolled_back: bool
    reason: str = ""


class CutoverResult(BaseModel):
    """A cutover's outcome: done, or refused with the verification that failed."""

    cut_over: bool
    reason: str = ""
    verification: VerificationReport | None = None


class MigrationProgress(BaseModel):
    """The `progress` (and `status`) query: stage, counts, rate and ETA."""

    domain: MigrationDomain
    stage: MigrationStage
    paused: bool
    backfill_cursor: int
    cdc_cursor: int
    backfilled: int
    quarantined: int
    applied_events: int
    total_estimate: int
    rows_per_second: float
    eta_seconds: float | None
    last_verification: VerificationReport | None = None
