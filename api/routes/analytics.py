"""Analytics: the dashboard, spending per period, categories, trends (all from the rollup),
client events, and the streamed transactions export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import StreamingResponse

from activities.analytics import service
from activities.analytics.client_events import EventRejected, check_events, store_events
from activities.analytics.export import render
from activities.analytics.periods import Period
from api.analytics.errors import EventsTooLarge, InvalidEvent
from api.analytics.limits import spend_event_budget
from api.analytics.params import day_range, instants
from api.deps import CurrentUser, ServicesDep
from api.money import category as category_of
from api.money import currency_code
from api.openapi_problems import problems
from core.db import transaction
from models.analytics.schemas import (
    CategoryBreakdown,
    ClientEventsBody,
    Dashboard,
    EventsAccepted,
    SpendingComparison,
    Trends,
)
from models.base import utcnow
from models.text import SINGLE_LINE

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
DayParam = Annotated[
    str | None, Query(max_length=10, description="a day, e.g. 2026-11-01"), SINGLE_LINE
]
FromParam = Annotated[
    str | None,
    Query(alias="from", max_length=10, description="first day (included)"),
    SINGLE_LINE,
]


@router.get("/dashboard")
async def get_dashboard(user: CurrentUser, services: ServicesDep) -> Dashboard:
    """Balances per currency, this month's flows, top categories, savings rate, upcoming
    scheduled payments."""
    async with services.reads() as session:
        return await service.dashboard(session, user.id, utcnow())


@router.get("/spending/{period}")
async def get_spending(
    period: Annotated[Period, Path(description="day, week, month or year")],
    user: CurrentUser,
    services: ServicesDep,
) -> SpendingComparison:
    """Spending in the current period so far against the previous period (UTC days)."""
    async with services.reads() as session:
        return await service.spending(session, user.id, period, utcnow().date())


@router.get("/categories")
async def get_categories(
    user: CurrentUser,
    services: ServicesDep,
    from_: FromParam = None,
    to: DayParam = None,
    currency: Annotated[str | None, Query(max_length=3), SINGLE_LINE] = None,
) -> CategoryBreakdown:
    """Spending and income per category between two days (default: this month)."""
    span = day_range(from_, to, utcnow().date(), services.settings.analytics_max_range_days)
    code = currency_code(currency) if currency is not None else None
    async with services.reads() as session:
        return await service.categories(session, user.id, span, code)


@router.get("/trends")
async def get_trends(
    user: CurrentUser,
    services: ServicesDep,
    months: Annotated[int, Query(ge=1, le=36)] = 6,
    window: Annotated[int, Query(ge=1, le=12, description="moving-average months")] = 3,
    category: Annotated[str | None, Query(max_length=32), SINGLE_LINE] = None,
) -> Trends:
    """Monthly spending per category over the last `months` months with a moving average."""
    chosen = category_of(category) if category is not None else None
    async with services.reads() as session:
        return await service.trends(
            session, user.id, utcnow().date(), months=months, window=window, category=chosen
        )


@router.post("/events", status_code=status.HTTP_202_ACCEPTED, responses=problems(413, 429))
async def post_events(
    body: ClientEventsBody, request: Request, user: CurrentUser, services: ServicesDep
) -> EventsAccepted:
    """Store client events (schema-checked, size-capped, rate-limited, append-only)."""
    cap = services.settings.analytics_events_max_body_bytes
    if len(await request.body()) > cap:
        raise EventsTooLarge(f"an events body may be at most {cap} bytes", max_bytes=cap)
    try:
        check_events(body.events, utcnow())
    except EventRejected as exc:
        raise InvalidEvent(str(exc), index=exc.index) from exc
    await spend_event_budget(
        services.redis, user.id, len(body.events), services.settings.analytics_events_per_minute
    )
    async with transaction(services.sessions) as session:
        stored = await store_events(session, user.id, body.events)
    return EventsAccepted(stored=stored, duplicates=len(body.events) - stored)


@router.get(
    "/export",
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
            "description": "The transactions, oldest first, streamed",
        }
    },
)
async def export_transactions(
    user: CurrentUser,
    services: ServicesDep,
    from_: FromParam = None,
    to: DayParam = None,
    format: Literal["csv", "json"] = "csv",
) -> StreamingResponse:
    """The caller's transactions between two days (both required) as CSV or JSON, streamed."""
    span = day_range(
        from_, to, utcnow().date(), services.settings.analytics_max_range_days, required=True
    )
    start, end = instants(span)
    chunks: AsyncIterator[bytes] = render(services.read_pool, user.id, start, end, format)
    name = f"transactions-{span.first}-{span.last}.{format}"
    return StreamingResponse(
        chunks,
        media_type="text/csv" if format == "csv" else "application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
