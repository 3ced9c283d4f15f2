"""Preferences: the defaults, the effective channels of a category, and quiet hours as instants.

Security notices ignore the switches and quiet hours: a login from a new device at 3 a.m. is
exactly when the customer must hear about it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.notifications.payloads import QuietWindow
from models.notifications.tables import (
    NotificationCategory,
    NotificationChannel,
    NotificationPreference,
)

_C, _K = NotificationCategory, NotificationChannel
DEFAULTS: dict[NotificationCategory, dict[NotificationChannel, bool]] = {
    _C.PAYMENTS: {_K.IN_APP: True, _K.EMAIL: True, _K.PUSH: True},
    _C.SECURITY: {_K.IN_APP: True, _K.EMAIL: True, _K.PUSH: True},
    _C.INSIGHTS: {_K.IN_APP: True, _K.EMAIL: False, _K.PUSH: True},
    _C.ANNOUNCEMENTS: {_K.IN_APP: True, _K.EMAIL: False, _K.PUSH: True},
}


def effective_channels(
    pref: NotificationPreference | None,
) -> dict[NotificationCategory, dict[NotificationChannel, bool]]:
    """The full category x channel matrix: the defaults overlaid with the user's switches."""
    stored: dict[str, Any] = pref.channels if pref is not None else {}
    matrix: dict[NotificationCategory, dict[NotificationChannel, bool]] = {}
    for category, defaults in DEFAULTS.items():
        overrides = stored.get(category.value, {})
        matrix[category] = {
            channel: bool(overrides.get(channel.value, on)) if category != _C.SECURITY else True
            for channel, on in defaults.items()
        }
    return matrix


def merged_switches(
    stored: dict[str, Any], changes: dict[str, dict[str, bool | None]]
) -> dict[str, Any]:
    """The stored switches with the given changes applied (None leaves a channel as it is)."""
    merged = {category: dict(values) for category, values in stored.items()}
    for category, channels in changes.items():
        for channel, on in channels.items():
            if on is not None:
                merged.setdefault(category, {})[channel] = on
    return merged


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def quiet_window(pref: NotificationPreference | None, now: datetime) -> QuietWindow | None:
    """The quiet period that contains `now`, else the next one; None without quiet hours."""
    if pref is None or pref.quiet_start is None or pref.quiet_end is None:
        return None
    zone = ZoneInfo(pref.time_zone)
    today = now.astimezone(zone).date()
    spans_midnight = pref.quiet_start > pref.quiet_end
    for offset in (-1, 0, 1):
        day = today + timedelta(days=offset)
        start = _at(day, pref.quiet_start, zone)
        end = _at(day + timedelta(days=1 if spans_midnight else 0), pref.quiet_end, zone)
        if now < end:
            return QuietWindow(start=start.astimezone(UTC), end=end.astimezone(UTC))
    return None  # pragma: no cover - the day after always ends later


def is_quiet(window: QuietWindow | None, now: datetime) -> bool:
    """True while `now` lies within the window."""
    return window is not None and window.start <= now < window.end
