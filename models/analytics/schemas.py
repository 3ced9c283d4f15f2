"""Analytics API schemas: dashboard, spending comparison, categories, trends, client events."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from models.base import StrictModel, aware_utc
from models.money import Money
from models.text import SINGLE_LINE


class Flows(BaseModel):
    """Posted money in and out; `income` and `spending` leave out transfers."""

    money_in: Money
    money_out: Money
    income: Money
    spending: Money
    transactions: int


class CategoryAmount(BaseModel):
    """One category's spending (debits) and income (credits) in a period."""

    category: str
    spending: Money
    income: Money
    count: int
    share_of_spending: float | None = Field(
        None, description="this category's part of all spending (0..1); null without spending"
    )


class MonthFlows(BaseModel):
    """One month's flows."""

    month: str
    flows: Flows


class CurrencyDashboard(BaseModel):
    """The dashboard's figures in one currency."""

    currency: str
    balance: Money
    available: Money
    accounts: int
    month_to_date: Flows
    top_categories: list[CategoryAmount]
    savings_rate: float | None = Field(
        None, description="(income - spending) / income this month; null without income"
    )
    recent_months: list[MonthFlows]


class UpcomingPayment(BaseModel):
    """A scheduled payment that has not run yet."""

    payment_id: uuid.UUID
    amount: Money
    description: str
    execute_at: datetime


class Dashboard(BaseModel):
    """Balances, this month's flows, top categories, upcoming payments, savings rate."""

    as_of: datetime
    month: str
    currencies: list[CurrencyDashboard]
    upcoming_payments: list[UpcomingPayment]


class PeriodFigures(BaseModel):
    """One period's spending and income in one currency."""

    first_day: date
    last_day: date
    flows: Flows
    categories: list[CategoryAmount]


class CurrencySpending(BaseModel):
    """This period so far against the previous period (whole, and up to the same day)."""

    currency: str
    current: PeriodFigures
    previous: PeriodFigures
    previous_to_date: PeriodFigures
    change: Money = Field(description="spending now minus spending in previous_to_date")
    change_ratio: float | None = Field(
        None, description="change / previous_to_date spending; null when that was zero"
    )


class SpendingComparison(BaseModel):
    """Spending in the current period against the previous one, per currency."""

    period: str
    today: date
    currencies: list[CurrencySpending]


class CurrencyCategories(BaseModel):
    """Categories of one currency, largest spending first."""

    currency: str
    flows: Flows
    categories: list[CategoryAmount]


class CategoryBreakdown(BaseModel):
    """Spending and income per category between two days (both included)."""

    first_day: date
    last_day: date
    currencies: list[CurrencyCategories]


class TrendPoint(BaseModel):
    """One month of one category: its spending and the trailing moving average."""

    month: str
    spending: Money
    moving_average: Money


class CategoryTrend(BaseModel):
    """A category's monthly spending series in one currency."""

    category: str
    currency: str
    points: list[TrendPoint]


class Trends(BaseModel):
    """Monthly spending per category over the last `months` months, with a moving average."""

    months: int
    window: int
    series: list[CategoryTrend]


class ClientEvent(StrictModel):
    """One client event: a name from the catalogue and the properties its schema allows."""

    id: uuid.UUID = Field(description="client-chosen id; a resent event is stored once")
    name: Annotated[str, Field(min_length=1, max_length=64), SINGLE_LINE]
    occurred_at: datetime
    properties: dict[str, Any] = Field(default_factory=dict, max_length=16)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        checked = aware_utc(value, "occurred_at")
        assert checked is not None
        return checked


class ClientEventsBody(StrictModel):
    """A batch of client events (at most 50)."""

    events: list[ClientEvent] = Field(min_length=1, max_length=50)


class EventsAccepted(BaseModel):
    """How many events were stored, and how many were already there (resent)."""

    stored: int
    duplicates: int
