"""API schemas for notifications: the list, preferences, templates and the staff send."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from models.base import StrictModel
from models.notifications.tables import NotificationCategory
from models.text import NOTE, SINGLE_LINE


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _time_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin")
    return value


TimeZoneName = Annotated[
    str, StringConstraints(min_length=1, max_length=64), SINGLE_LINE, AfterValidator(_time_zone)
]
Locale = Literal["en", "de"]


class NotificationPublic(BaseModel):
    """One notice as the customer sees it (also the `notification.new` event's payload)."""

    id: uuid.UUID
    category: NotificationCategory
    type: str
    title: str
    body: str
    read: bool
    created_at: datetime


class NotificationPage(BaseModel):
    """A page of notices, newest first, and how many are unread in all."""

    items: list[NotificationPublic]
    next_cursor: str | None = None
    unread_count: int


class ChannelSwitches(StrictModel):
    """On/off per channel; a missing channel keeps its current setting."""

    in_app: bool | None = None
    email: bool | None = None
    push: bool | None = None


class CategorySwitches(StrictModel):
    """Switches per category; unknown categories are refused (422)."""

    payments: ChannelSwitches | None = None
    security: ChannelSwitches | None = None
    insights: ChannelSwitches | None = None
    announcements: ChannelSwitches | None = None


class QuietHours(StrictModel):
    """Local times between which email and push wait (a window may span midnight)."""

    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local times: give no offset, set time_zone")
        if self.start == self.end:
            raise ValueError("quiet hours must not start and end at the same time")
        return self


class PreferencesUpdate(StrictModel):
    """A change of preferences: only the fields given change (`quiet_hours: null` clears)."""

    locale: Locale | None = None
    time_zone: TimeZoneName | None = None
    quiet_hours: QuietHours | None = None
    channels: CategorySwitches | None = None

    @model_validator(mode="after")
    def _security_stays_on(self) -> PreferencesUpdate:
        security = self.channels.security if self.channels else None
        if security is not None and False in (security.in_app, security.email, security.push):
            raise ValueError("security notices cannot be switched off")
        return self


class PreferencesPublic(BaseModel):
    """The caller's effective preferences (defaults filled in)."""

    locale: Locale
    time_zone: str
    quiet_hours: QuietHours | None = None
    channels: dict[NotificationCategory, dict[str, bool]]


class TemplatePublic(BaseModel):
    """One notice template: its key, category, locales and the variables it uses."""

    key: str
    category: NotificationCategory
    locales: list[str]
    variables: list[str]


class TemplateList(BaseModel):
    """Every notice template."""

    items: list[TemplatePublic]


class NotificationSendBody(StrictModel):
    """A staff message: to one customer (`user_id`) or to everyone (`audience: global`)."""

    audience: Literal["user", "global"] = "user"
    user_id: uuid.UUID | None = None
    category: NotificationCategory = NotificationCategory.ANNOUNCEMENTS
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), SINGLE_LINE
    ]
    body: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), NOTE
    ] = Field(description="plain text; line breaks allowed, never markup")

    @model_validator(mode="after")
    def _one_audience(self) -> NotificationSendBody:
        if (self.audience == "user") != (self.user_id is not None):
            raise ValueError("give user_id exactly when audience is 'user'")
        if self.audience == "global" and self.category != NotificationCategory.ANNOUNCEMENTS:
            raise ValueError("a global send is an announcement")
        return self


class NotificationSendAccepted(BaseModel):
    """A staff send was accepted: its event and the workflow that delivers it."""

    id: uuid.UUID
    audience: Literal["user", "global"]
    event_id: int
    workflow_id: str
