"""Monthly report API schemas: the list (keyset pages) and one report with its figures."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from models.analytics.schemas import CategoryAmount, Flows
from models.money import Money


class ReportCurrency(BaseModel):
    """One currency's figures of the month."""

    currency: str
    flows: Flows
    savings_rate: float | None
    previous_spending: Money
    change_ratio: float | None = Field(
        None, description="spending against the month before; null when that was zero"
    )
    categories: list[CategoryAmount]
    daily_spending: list[Money] = Field(description="spending of each day of the month")


class MonthlyReportSummary(BaseModel):
    """A report in the list."""

    id: uuid.UUID
    month: str
    ready_at: datetime
    html_url: str


class MonthlyReportPage(BaseModel):
    """A page of the caller's reports, newest month first."""

    items: list[MonthlyReportSummary]
    next_cursor: str | None


class MonthlyReportPublic(BaseModel):
    """One monthly report: the figures (computed in SQL) and the narrative."""

    id: uuid.UUID
    month: str
    ready_at: datetime
    narrative: str
    narrative_source: str = Field(description="`template` or `llm`")
    currencies: list[ReportCurrency]
    html_url: str
