"""Notifications: the caller's notices (keyset pages, unread count, read, delete), preferences,
the templates, and the staff send."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from activities.notifications.catalog import TEMPLATES
from activities.notifications.preferences import effective_channels, merged_switches
from activities.notifications.service import notification_public, preferences_of
from api.deps import Caller, ClientDep, CurrentUser, ServicesDep
from api.idempotency import IdempotencyKey
from api.notifications.send import staff_send
from api.pagination import CursorParam, decode_cursor, encode_cursor, position
from api.services import Services
from api.staff import require_roles
from core import errors
from core.db import transaction
from models.base import utcnow
from models.notifications.schemas import (
    NotificationPage,
    NotificationPublic,
    NotificationSendAccepted,
    NotificationSendBody,
    PreferencesPublic,
    PreferencesUpdate,
    QuietHours,
    TemplateList,
    TemplatePublic,
)
from models.notifications.tables import Notification, NotificationPreference
from models.staff.tables import StaffRole

router = APIRouter(prefix="/api/notifications", tags=["notifications"])
PAGE_MAX = 100
# Who may message customers; compliance reads, it does not send.
StaffSender = Annotated[
    Caller, Depends(require_roles(StaffRole.SUPPORT, StaffRole.OPS, StaffRole.ADMIN))
]


def _visible(user_id: uuid.UUID, unread: bool) -> list[object]:
    """The caller's in-app notices that are not deleted (and not read, when asked)."""
    where: list[object] = [
        col(Notification.user_id) == user_id,
        col(Notification.in_app).is_(True),
        col(Notification.deleted_at).is_(None),
    ]
    if unread:
        where.append(col(Notification.read_at).is_(None))
    return where


@router.get("")
async def list_notifications(
    user: CurrentUser,
    services: ServicesDep,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    cursor: CursorParam = None,
) -> NotificationPage:
    """The caller's notices, newest first (keyset pages), optionally only the unread ones."""
    kind = "nu" if unread else "n"  # a cursor of one filter is refused by the other
    query = select(Notification).where(*_visible(user.id, unread))  # type: ignore[arg-type]
    if cursor is not None:
        at, after = position(*decode_cursor(cursor, kind, 2))
        query = query.where(
            tuple_(col(Notification.created_at), col(Notification.id)) < (at, after)
        )
    query = query.order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
    async with services.reads() as session:
        rows = list((await session.execute(query.limit(limit + 1))).scalars())
        unread_count = await session.scalar(
            select(func.count()).select_from(Notification).where(*_visible(user.id, True))  # type: ignore[arg-type]
        )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(kind, page[-1].created_at.isoformat(), str(page[-1].id))
    return NotificationPage(
        items=[notification_public(r) for r in page],
        next_cursor=next_cursor,
        unread_count=unread_count or 0,
    )


def _preferences_public(pref: NotificationPreference | None) -> PreferencesPublic:
    quiet = None
    if pref is not None and pref.quiet_start is not None and pref.quiet_end is not None:
        quiet = QuietHours(start=pref.quiet_start, end=pref.quiet_end)
    return PreferencesPublic(
        locale="de" if pref is not None and pref.locale == "de" else "en",
        time_zone=pref.time_zone if pref is not None else "UTC",
        quiet_hours=quiet,
        channels={
            category: {channel.value: on for channel, on in channels.items()}
            for category, channels in effective_channels(pref).items()
        },
    )


@router.get("/preferences")
async def get_preferences(user: CurrentUser, services: ServicesDep) -> PreferencesPublic:
    """The caller's notification preferences (defaults where nothing was chosen)."""
    async with services.reads() as session:
        return _preferences_public(await preferences_of(session, user.id))


@router.post("/preferences")
async def update_preferences(
    body: PreferencesUpdate, user: CurrentUser, services: ServicesDep
) -> PreferencesPublic:
    """Change channels per category, quiet hours, time zone or locale (security stays on)."""
    given = body.model_fields_set
    async with transaction(services.sessions) as session:
        await session.execute(
            insert(NotificationPreference)
            .values(user_id=user.id, locale="en", time_zone="UTC", channels={})
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        pref = await session.get(NotificationPreference, user.id, with_for_update=True)
        assert pref is not None
        if body.locale is not None:
            pref.locale = body.locale
        if body.time_zone is not None:
            pref.time_zone = body.time_zone
        if "quiet_hours" in given:
            quiet = body.quiet_hours
            pref.quiet_start, pref.quiet_end = (quiet.start, quiet.end) if quiet else (None, None)
        if body.channels is not None:
            changes = body.channels.model_dump(exclude_none=True)
            pref.channels = merged_switches(pref.channels, changes)
        pref.updated_at = utcnow()
    return _preferences_public(pref)


@router.get("/templates")
async def list_templates(user: CurrentUser) -> TemplateList:
    """The notice templates: keys, categories, locales and the variables each uses."""
    return TemplateList(
        items=[
            TemplatePublic(
                key=spec.key,
                category=spec.category,
                locales=sorted(spec.texts),
                variables=list(spec.variables),
            )
            for spec in TEMPLATES.values()
        ]
    )


@router.post(
    "/send",
    status_code=status.HTTP_202_ACCEPTED,
    responses={status.HTTP_200_OK: {"model": NotificationSendAccepted, "description": "a retry"}},
)
async def send_notification(
    body: NotificationSendBody,
    services: ServicesDep,
    response: Response,
    sender: StaffSender,
    client: ClientDep,
    idempotency_key: IdempotencyKey = None,
) -> NotificationSendAccepted:
    """Staff only: send a message to one customer or to everyone (`global.announcements`)."""
    outcome = await staff_send(services, sender, body, idempotency_key, client)
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return outcome.accepted


async def _owned(services: Services, user_id: uuid.UUID, notification_id: uuid.UUID) -> None:
    async with services.reads() as session:
        row = await session.get(Notification, notification_id)
    if row is None or row.user_id != user_id or row.deleted_at is not None or not row.in_app:
        raise errors.NotFound("unknown notification")


@router.put("/{notification_id}/read")
async def mark_read(
    notification_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> NotificationPublic:
    """Mark one of the caller's notices read (again is fine)."""
    await _owned(services, user.id, notification_id)
    async with transaction(services.sessions) as session:
        row = await session.get(Notification, notification_id, with_for_update=True)
        assert row is not None
        row.read_at = row.read_at or utcnow()
    return notification_public(row)


@router.delete("/{notification_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_notification(
    notification_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> Response:
    """Delete one of the caller's notices (it stays out of the list for good)."""
    await _owned(services, user.id, notification_id)
    async with transaction(services.sessions) as session:
        row = await session.get(Notification, notification_id, with_for_update=True)
        assert row is not None
        row.deleted_at = row.deleted_at or utcnow()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
