"""NotificationActivities: store a notice (with its push event), push later, email, fan out.

One transaction each, idempotent by the notice's (event, user) key and the deliveries'
(notice, channel) key, so a retried step returns or skips what the first attempt did.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from temporalio import activity

from activities.notifications import service
from activities.notifications.events import notice_content
from activities.notifications.preferences import (
    DEFAULTS,
    effective_channels,
    is_quiet,
    quiet_window,
)
from activities.notifications.templates import pick_locale, render_email, render_notice
from core.db import SessionFactory, transaction
from core.email import EmailBackend, OutgoingEmail
from core.logging import get_logger
from models.base import utcnow
from models.identity.tables import User, UserStatus
from models.ledger.tables import OutboxEvent
from models.notifications.payloads import (
    AnnouncementPageInput,
    AnnouncementRecipients,
    DeliverInput,
    FanOutInput,
    NotificationPlan,
    RecordInput,
)
from models.notifications.tables import (
    Notification,
    NotificationCategory,
    NotificationChannel,
    NotificationPreference,
)
from temporal.deterministic import input_refusals_are_final

log = get_logger(__name__)
_IN_APP, _EMAIL, _PUSH = (
    NotificationChannel.IN_APP,
    NotificationChannel.EMAIL,
    NotificationChannel.PUSH,
)


def _plan(
    row: Notification, pref: NotificationPreference | None, *, pushed: bool, emailed: bool
) -> NotificationPlan:
    """What remains to deliver for a stored notice, per the user's current preferences."""
    channels = effective_channels(pref)[NotificationCategory(row.category)]
    urgent = row.category == NotificationCategory.SECURITY
    return NotificationPlan(
        notification_id=row.id,
        in_app=row.in_app,
        pushed=pushed,
        email=channels[_EMAIL] and not emailed,
        push_pending=channels[_PUSH] and not pushed,
        quiet=None if urgent else quiet_window(pref, utcnow()),
    )


class NotificationActivities:
    """Activities of NotificationWorkflow, bound to their dependencies."""

    def __init__(self, sessions: SessionFactory, email: EmailBackend) -> None:
        self._sessions = sessions
        self._email = email

    @activity.defn(name="notifications.record")
    async def record(self, inp: RecordInput) -> NotificationPlan:
        """Render and store the in-app notice; push it now unless quiet hours say wait."""
        with input_refusals_are_final():
            async with transaction(self._sessions) as session:
                return await self._record(session, inp)

    async def _record(self, session: Any, inp: RecordInput) -> NotificationPlan:
        pref = await service.preferences_of(session, inp.user_id)
        existing = await service.find_notification(session, inp.event_id, inp.user_id)
        if existing is not None:  # a retry: what the first attempt stored, minus what is done
            return _plan(
                existing,
                pref,
                pushed=await service.delivered(session, existing.id, _PUSH),
                emailed=await service.delivered(session, existing.id, _EMAIL),
            )
        event = await session.get(OutboxEvent, inp.event_id)
        user = await session.get(User, inp.user_id)
        if event is None or event.user_id not in (inp.user_id, None):
            return NotificationPlan(skipped="event-unknown")
        if user is None or user.status != UserStatus.ACTIVE:
            return NotificationPlan(skipped="user-inactive")
        locale = pick_locale(pref.locale if pref else None)
        zone = pref.time_zone if pref else "UTC"
        payload = await service.enriched_payload(session, event)
        content = notice_content(event.type, payload, locale, zone)
        if content is None:
            return NotificationPlan(skipped="no-notice")
        if content.template == "money.received" and await service.is_own_transfer(session, payload):
            return NotificationPlan(skipped="own-transfer")
        channels = effective_channels(pref)[content.category]
        if not any(channels.values()):
            return NotificationPlan(skipped="switched-off")
        rendered = render_notice(content.template, locale, content.context)
        row = await service.store_notification(
            session,
            {
                "id": uuid.uuid4(),
                "user_id": inp.user_id,
                "event_id": inp.event_id,
                "event_type": event.type,
                "category": content.category.value,
                "template": content.template,
                "locale": locale,
                "title": rendered.subject,
                "body": rendered.text,
                "context": content.context,
                "in_app": channels[_IN_APP],
            },
        )
        plan = _plan(row, pref, pushed=False, emailed=False)
        if plan.push_pending and not is_quiet(plan.quiet, utcnow()):
            await service.push_notification(session, row)  # same transaction as the row
            plan.push_pending, plan.pushed = False, True
        return plan

    @activity.defn(name="notifications.push")
    async def push(self, inp: DeliverInput) -> bool:
        """Queue the deferred `notification.new` push (once); False if it was queued before."""
        async with transaction(self._sessions) as session:
            row = await session.get(Notification, inp.notification_id)
            if row is None:
                return False
            return await service.push_notification(session, row)

    @activity.defn(name="notifications.send_email")
    async def send_email(self, inp: DeliverInput) -> bool:
        """Email a notice through the configured backend, once; False if it was sent before."""
        async with self._sessions() as session:
            row = await session.get(Notification, inp.notification_id)
            if row is None or await service.delivered(session, row.id, _EMAIL):
                return False
            user = await session.get(User, row.user_id)
        if user is None:
            return False
        mail = render_email(row.template, row.locale, row.context, user.first_name)
        await self._email.send(
            OutgoingEmail(to=user.email, subject=mail.subject, body=mail.text, html=mail.html)
        )
        # A crash between the send and this commit sends once more on retry (SMTP offers no
        # idempotency key); a retry after this commit sends nothing.
        async with transaction(self._sessions) as session:
            await service.claim_delivery(session, row.id, _EMAIL)
        return True

    @activity.defn(name="notifications.fan_out")
    async def fan_out(self, inp: FanOutInput) -> int:
        """Store an announcement's in-app notice for every active customer who keeps them on
        (one statement; the (event, user) key makes a retry add nothing)."""
        async with transaction(self._sessions) as session:
            event = await session.get(OutboxEvent, inp.event_id)
            if event is None:
                return 0
            params: dict[str, Any] = {"event_id": inp.event_id, "type": event.type}
            for locale in ("en", "de"):
                content = notice_content(event.type, event.payload, locale, "UTC")
                if content is None:
                    return 0
                rendered = render_notice(content.template, locale, content.context)
                params[f"title_{locale}"], params[f"body_{locale}"] = (
                    rendered.subject,
                    rendered.text,
                )
                params["context"], params["template"] = content.context, content.template
            params["email_default"] = DEFAULTS[NotificationCategory.ANNOUNCEMENTS][_EMAIL]
            result = await session.execute(
                _FAN_OUT, params | {"context": json.dumps(params["context"])}
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    @activity.defn(name="notifications.announcement_emails")
    async def announcement_emails(self, inp: AnnouncementPageInput) -> AnnouncementRecipients:
        """The next page of an announcement's recipients who want announcements by email."""
        async with self._sessions() as session:
            rows = await session.execute(
                _EMAIL_RECIPIENTS,
                {
                    "event_id": inp.event_id,
                    "after": inp.after_user,
                    "limit": inp.limit,
                    "default": DEFAULTS[NotificationCategory.ANNOUNCEMENTS][_EMAIL],
                },
            )
            return AnnouncementRecipients(user_ids=[r[0] for r in rows])


_EMAIL_RECIPIENTS = text(
    """
    SELECT n.user_id FROM notifications n
    LEFT JOIN notification_preferences p ON p.user_id = n.user_id
    WHERE n.event_id = :event_id
      AND COALESCE(CAST(p.channels -> 'announcements' ->> 'email' AS boolean), :default)
      AND (CAST(:after AS uuid) IS NULL OR n.user_id > CAST(:after AS uuid))
    ORDER BY n.user_id LIMIT :limit
    """
)

# Locale per user (default en); a user with announcements off in the app and by email gets no
# row (a row hidden from the list still carries the email).
_FAN_OUT = text(
    """
    INSERT INTO notifications (id, user_id, event_id, event_type, category, template, locale,
                               title, body, context, in_app, created_at)
    SELECT gen_random_uuid(), u.id, :event_id, :type, 'announcements', :template,
           CASE WHEN p.locale = 'de' THEN 'de' ELSE 'en' END,
           CASE WHEN p.locale = 'de' THEN :title_de ELSE :title_en END,
           CASE WHEN p.locale = 'de' THEN :body_de ELSE :body_en END,
           CAST(:context AS jsonb),
           COALESCE(CAST(p.channels -> 'announcements' ->> 'in_app' AS boolean), true), now()
    FROM users u LEFT JOIN notification_preferences p ON p.user_id = u.id
    WHERE u.status = 'active'
      AND (COALESCE(CAST(p.channels -> 'announcements' ->> 'in_app' AS boolean), true)
           OR COALESCE(CAST(p.channels -> 'announcements' ->> 'email' AS boolean),
                       :email_default))
    ON CONFLICT ON CONSTRAINT ux_notifications_event_user DO NOTHING
    """
)
