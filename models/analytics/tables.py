"""Analytics tables: the per-day rollup kept by triggers on `transactions`, and client events.

`analytics_daily` holds, per customer account, UTC day and category, the sums and counts of
posted credits (in) and debits (out). Statement-level triggers on `transactions` (migration
0010) keep it in the transaction of every insert, status change, recategorization or delete,
so the dashboard reads a few hundred rollup rows instead of scanning every transaction.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Identity, Index, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import timestamp

# A transaction without a category is rolled up under this one (the rules always set one).
UNCATEGORIZED = "other"


class AnalyticsDaily(SQLModel, table=True):
    """Posted money in and out of one account on one UTC day in one category."""

    __tablename__ = "analytics_daily"
    __table_args__ = (
        CheckConstraint(
            "in_amount >= 0 AND out_amount >= 0 AND in_count >= 0 AND out_count >= 0",
            name="ck_analytics_daily_non_negative",
        ),
        Index("ix_analytics_daily_user_day", "user_id", "day"),
    )

    # Derived from transactions by their triggers, whose references are checked (decision 90):
    # no foreign keys of its own.
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True)
    category: str = Field(max_length=32, primary_key=True)
    user_id: uuid.UUID
    currency: str = Field(max_length=3)
    in_amount: int = Field(default=0, sa_type=BigInteger)
    in_count: int = Field(default=0, sa_type=BigInteger)
    out_amount: int = Field(default=0, sa_type=BigInteger)
    out_count: int = Field(default=0, sa_type=BigInteger)


class AnalyticsEvent(SQLModel, table=True):
    """One client event (append-only: a trigger refuses updates and deletes of single rows)."""

    __tablename__ = "analytics_events"
    __table_args__ = (
        UniqueConstraint("user_id", "client_event_id", name="ux_analytics_events_client_id"),
        Index("ix_analytics_events_user_received", "user_id", "received_at"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    client_event_id: uuid.UUID
    name: str = Field(max_length=64)
    properties: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    occurred_at: datetime = timestamp()
    received_at: datetime = timestamp(server_now=True)
