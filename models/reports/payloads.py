"""Monthly report workflow and activity payloads: ids, a month label and counts only."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class MonthlyReportsInput(BaseModel):
    """One run of the fan-out. `month` (YYYY-MM) is None when a Schedule starts it: the month
    then comes from the scheduled start time (the month before it). The rest is the position
    and tallies a continued run carries on with."""

    month: str | None = None
    after_user: uuid.UUID | None = None
    page_size: int = Field(default=500, ge=1)
    max_in_flight: int = Field(default=50, ge=1)
    pages_per_run: int = Field(default=20, ge=1)
    activity_timeout_seconds: float | None = None
    narrative_task_queue: str | None = None
    reports: int = 0
    skipped: int = 0
    failed: int = 0


class MonthlyReportsState(BaseModel):
    """Where the fan-out stands (`status` query and result)."""

    month: str | None = None
    status: str = "starting"
    reports: int = 0
    skipped: int = 0
    failed: int = 0
    in_flight: int = 0


class CustomersPageInput(BaseModel):
    """A page of customers to report on, after a user id (keyset)."""

    month: str
    after_user: uuid.UUID | None = None
    limit: int


class CustomersPage(BaseModel):
    """User ids, ascending."""

    user_ids: list[uuid.UUID]


class MonthlyReportInput(BaseModel):
    """One customer's report of one month."""

    user_id: uuid.UUID
    month: str
    activity_timeout_seconds: float | None = None
    narrative_task_queue: str | None = None


class ReportRef(BaseModel):
    """A stored report, by id."""

    report_id: uuid.UUID


class ComputedReport(BaseModel):
    """The report row after its figures were computed (`status` may already be `ready`)."""

    report_id: uuid.UUID
    status: str


class NarratedReport(BaseModel):
    """Where the narrative came from: `template` or `llm`."""

    source: str


class PublishedReport(BaseModel):
    """Whether this call announced the report (False: an earlier run already had)."""

    report_id: uuid.UUID
    announced: bool


class MonthlyReportState(BaseModel):
    """Where one report stands (`status` query and result)."""

    user_id: uuid.UUID
    month: str
    status: str = "computing"
    report_id: uuid.UUID | None = None
    announced: bool = False
