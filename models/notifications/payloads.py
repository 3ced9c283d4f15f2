"""NotificationWorkflow and notification activity payloads: ids, references and durations only
(the texts are read from PostgreSQL by the activities, never carried through Temporal)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class NotificationInput(BaseModel):
    """Start arguments: which outbox event, for whom (None: every customer, an announcement)."""

    event_id: int
    event_type: str
    user_id: uuid.UUID | None = None
    email_task_queue: str = "vortex-external"
    activity_timeout_seconds: float | None = None  # None: the default database step timeout
    # An announcement's email to one user (the broadcast already pushed it): no push here.
    email_only: bool = False
    # An announcement continued as new: the recipients after this user are still to email.
    after_user: uuid.UUID | None = None


class AnnouncementPageInput(BaseModel):
    """A page of an announcement's recipients who want it by email (keyset on user id)."""

    event_id: int
    after_user: uuid.UUID | None = None
    limit: int = 200


class AnnouncementRecipients(BaseModel):
    """Users to email an announcement to, by id."""

    user_ids: list[uuid.UUID]


class RecordInput(BaseModel):
    """Render and store the in-app notice of one event for one user."""

    event_id: int
    user_id: uuid.UUID


class QuietWindow(BaseModel):
    """The user's current or next quiet period, as instants (the activity resolved the zone)."""

    start: datetime
    end: datetime


class NotificationPlan(BaseModel):
    """What `notifications.record` stored and what remains to deliver, per the preferences."""

    notification_id: uuid.UUID | None = None
    skipped: str | None = None  # why nothing is delivered (e.g. every channel switched off)
    in_app: bool = False  # the notice shows in the user's list
    pushed: bool = False  # `notification.new` is queued already
    email: bool = False
    push_pending: bool = False  # push wanted but not yet done (quiet hours)
    quiet: QuietWindow | None = None  # None: no quiet hours apply (or a security notice)


class DeliverInput(BaseModel):
    """Deliver one stored notice on one channel."""

    notification_id: uuid.UUID


class FanOutInput(BaseModel):
    """Store an announcement's in-app notice for every customer who has them on."""

    event_id: int


class NotificationState(BaseModel):
    """What the `status` query answers."""

    event_id: int
    status: str  # recording, quiet, delivering, delivered, skipped, email_failed
    notification_id: uuid.UUID | None = None
    deliver_at: datetime | None = None
    delivered: list[str] = []
    reason: str | None = None
    recipients: int | None = None  # an announcement: how many notices were stored
    emails_started: int | None = None  # an announcement: child workflows started to email it
