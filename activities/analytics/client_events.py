"""Client events: the schema of each event name, the checks, and the append-only store.

Properties are identifiers, enums and small counts only (no free text, so no personal data
slips into the log); each name's model forbids unknown properties.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models.analytics.schemas import ClientEvent

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-/]{0,63}$")]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Chart = Literal["dashboard", "spending", "categories", "trends", "report"]
PeriodName = Literal["day", "week", "month", "year"]
# How far from the server's clock a client's `occurred_at` may be.
PAST_LIMIT = timedelta(days=7)
FUTURE_LIMIT = timedelta(minutes=5)


class _Props(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScreenViewed(_Props):
    """`screen.viewed`."""

    screen: Ident
    referrer: Ident | None = None


class ButtonClicked(_Props):
    """`button.clicked`."""

    button: Ident
    screen: Ident


class ChartViewed(_Props):
    """`chart.viewed`."""

    chart: Chart
    period: PeriodName | None = None


class ExportRequested(_Props):
    """`export.requested`."""

    format: Literal["csv", "json"]


class ReportOpened(_Props):
    """`report.opened`."""

    report_id: Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")]
    view: Literal["json", "html"]


class SearchPerformed(_Props):
    """`search.performed` (the query itself is never sent)."""

    results: Count
    query_length: Annotated[int, Field(ge=0, le=200)]


SCHEMAS: dict[str, type[_Props]] = {
    "screen.viewed": ScreenViewed,
    "button.clicked": ButtonClicked,
    "chart.viewed": ChartViewed,
    "export.requested": ExportRequested,
    "report.opened": ReportOpened,
    "search.performed": SearchPerformed,
}


class EventRejected(ValueError):
    """An event outside the schema: which one and why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"events[{index}]: {reason}")
        self.index, self.reason = index, reason


def check_events(events: list[ClientEvent], now: datetime) -> None:
    """Raise EventRejected for the first event whose name, properties or time is refused."""
    for i, event in enumerate(events):
        schema = SCHEMAS.get(event.name)
        if schema is None:
            raise EventRejected(i, f"unknown event name {event.name[:64]!r}")
        try:
            schema.model_validate(event.properties)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "properties"
            raise EventRejected(i, f"properties.{where}: {first['msg']}") from exc
        if not now - PAST_LIMIT <= event.occurred_at <= now + FUTURE_LIMIT:
            raise EventRejected(i, "occurred_at is more than 7 days old or in the future")


_STORE = text(
    "INSERT INTO analytics_events (user_id, client_event_id, name, properties, occurred_at) "
    "SELECT CAST(:user_id AS uuid), e.id, e.name, CAST(e.props AS jsonb), e.at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:props AS text[]), "
    "CAST(:ats AS timestamptz[])) AS e(id, name, props, at) "
    "ON CONFLICT (user_id, client_event_id) DO NOTHING"
)


async def store_events(session: AsyncSession, user_id: uuid.UUID, events: list[ClientEvent]) -> int:
    """Append the events in one statement; returns how many were new (resent ids are kept once)."""
    unique = {e.id: e for e in events}
    result = await session.execute(
        _STORE,
        {
            "user_id": user_id,
            "ids": list(unique),
            "names": [e.name for e in unique.values()],
            "props": [json.dumps(e.properties) for e in unique.values()],
            "ats": [e.occurred_at for e in unique.values()],
        },
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
