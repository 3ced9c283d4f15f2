"""Analytics and report errors (API only: no workflow raises them)."""

from __future__ import annotations

from core.errors import AppError


class InvalidRange(AppError):
    """A date range that is inverted, open on one side, too long or not dates."""

    status, type, title = 422, "invalid-range", "Invalid date range"


class InvalidEvent(AppError):
    """A client event outside the schema (name, properties or time)."""

    status, type, title = 422, "invalid-event", "Event outside the schema"


class EventsTooLarge(AppError):
    """A client events body past the events route's own cap."""

    status, type, title = 413, "body-too-large", "Request body too large"


class TooManyEvents(AppError):
    """More client events in a minute than a user may send."""

    status, type, title = 429, "too-many-events", "Too many client events; retry later"


class ReportNotFound(AppError):
    """No such report of the caller's (another user's is not found either)."""

    status, type, title = 404, "not-found", "Not found"
    hide_details = True
