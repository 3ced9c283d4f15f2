"""Notification tables: the notices, their deliveries per channel, preferences, staff sends."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk


class NotificationCategory(StrEnum):
    """What a notice is about; preferences are per category (security cannot be switched off)."""

    PAYMENTS = "payments"
    SECURITY = "security"
    INSIGHTS = "insights"
    ANNOUNCEMENTS = "announcements"


class NotificationChannel(StrEnum):
    """Where a notice goes: the in-app list, an email, a push over the user's WebSocket."""

    IN_APP = "in_app"
    EMAIL = "email"
    PUSH = "push"


class Notification(SQLModel, table=True):
    """One notice for one user about one event (unique per event and user, so a retried step
    returns the first row). Deleting hides it (`deleted_at`); the row keeps redelivery out."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id", name="ux_notifications_event_user"),
        CheckConstraint(sql_in("category", NotificationCategory), name="ck_notifications_category"),
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index(
            "ix_notifications_user_unread",
            "user_id",
            postgresql_where=text("read_at IS NULL AND deleted_at IS NULL AND in_app"),
        ),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    # The outbox row's id (no foreign key: published outbox rows may be pruned).
    event_id: int = Field(sa_type=BigInteger)
    event_type: str = Field(max_length=64)
    category: NotificationCategory = Field(sa_type=String(16))
    template: str = Field(max_length=64)
    locale: str = Field(max_length=8)
    title: str = Field(max_length=300)
    body: str = Field(max_length=2000)
    # The template's variables, kept for the email step (rendered again as HTML there).
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    in_app: bool = True  # false: the user switched the in-app channel off for this category
    read_at: datetime | None = timestamp(nullable=True)
    deleted_at: datetime | None = timestamp(nullable=True)
    created_at: datetime = timestamp(server_now=True)


class NotificationDelivery(SQLModel, table=True):
    """A channel delivery of a notice that happened (email sent, push queued): at most once."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", name="ux_notification_deliveries_channel"),
        CheckConstraint(
            sql_in("channel", NotificationChannel), name="ck_notification_deliveries_channel"
        ),
    )

    id: uuid.UUID = uuid_pk()
    notification_id: uuid.UUID = Field(foreign_key="notifications.id", ondelete="CASCADE")
    channel: NotificationChannel = Field(sa_type=String(8))
    delivered_at: datetime = timestamp(server_now=True)


class NotificationPreference(SQLModel, table=True):
    """A user's choices; absent row or keys mean the defaults (`activities.notifications`)."""

    __tablename__ = "notification_preferences"

    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    locale: str = Field(default="en", max_length=8)
    time_zone: str = Field(default="UTC", max_length=64)
    quiet_start: time | None = None
    quiet_end: time | None = None
    # {category: {channel: bool}}: only what differs from the defaults needs to be here.
    channels: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    updated_at: datetime = timestamp(server_now=True)


class NotificationSend(SQLModel, table=True):
    """A staff send: maps the caller's Idempotency-Key to one outbox event (so one notice)."""

    __tablename__ = "notification_sends"
    __table_args__ = (
        UniqueConstraint(
            "staff_user_id", "idempotency_key", name="ux_notification_sends_staff_key"
        ),
    )

    id: uuid.UUID = uuid_pk()
    staff_user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    idempotency_key: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    recipient_user_id: uuid.UUID | None = Field(default=None)  # None: global.announcements
    event_id: int = Field(sa_type=BigInteger)
    created_at: datetime = timestamp(server_now=True)
