"""Monthly reports: figures (computed in SQL from the rollup) and a narrative, per user
and month."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk


class ReportStatus(StrEnum):
    """A report is computed, then narrated, then ready (and announced once)."""

    COMPUTED = "computed"
    NARRATED = "narrated"
    READY = "ready"


class MonthlyReport(SQLModel, table=True):
    """One customer's report of one month: unique per (user, month), whoever runs it how often."""

    __tablename__ = "monthly_reports"
    __table_args__ = (
        UniqueConstraint("user_id", "month", name="ux_monthly_reports_user_month"),
        CheckConstraint(sql_in("status", ReportStatus), name="ck_monthly_reports_status"),
        CheckConstraint("extract(day FROM month) = 1", name="ck_monthly_reports_month_first"),
        # Keyset pages of a user's reports, newest month first.
        Index("ix_monthly_reports_user_month_id", "user_id", "month", "id"),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    month: date
    status: ReportStatus = Field(default=ReportStatus.COMPUTED, sa_type=String(10))
    figures: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    narrative: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    narrative_source: str = Field(default="", max_length=16)
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)
    ready_at: datetime | None = timestamp(nullable=True)
