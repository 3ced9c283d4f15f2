"""Monthly reports of the caller: keyset-paged list, one report as JSON, and as HTML."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from activities.reports.view import html_url, report_html, report_public
from api.analytics.errors import ReportNotFound
from api.deps import CurrentUser, ServicesDep
from api.pagination import CursorParam, InvalidCursor, decode_cursor, encode_cursor
from api.services import Services
from models.reports.schemas import MonthlyReportPage, MonthlyReportPublic, MonthlyReportSummary

router = APIRouter(prefix="/api/ai/reports", tags=["reports"])
PAGE_MAX = 100
_CURSOR = "mr"
# Newest month first; a customer has one report per month, the id breaks no real tie but keeps
# the order total.
_PAGE = text(
    "SELECT id, month, ready_at FROM monthly_reports "
    "WHERE user_id = :user_id AND status = 'ready' "
    "AND (CAST(:month AS date) IS NULL OR (month, id) < (CAST(:month AS date), CAST(:id AS uuid))) "
    "ORDER BY month DESC, id DESC LIMIT :limit"
)
_ONE = text(
    "SELECT id, month, ready_at, narrative, narrative_source, figures FROM monthly_reports "
    "WHERE id = :id AND user_id = :user_id AND status = 'ready'"
)


def _after(cursor: str | None) -> tuple[date | None, uuid.UUID | None]:
    if cursor is None:
        return None, None
    month, row_id = decode_cursor(cursor, _CURSOR, 2)
    try:
        return date.fromisoformat(str(month)), uuid.UUID(str(row_id))
    except ValueError as exc:
        raise InvalidCursor("the cursor is not one this API issued") from exc


@router.get("/monthly")
async def list_monthly_reports(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 12,
    cursor: CursorParam = None,
) -> MonthlyReportPage:
    """The caller's ready monthly reports, newest month first (keyset pages)."""
    month, after = _after(cursor)
    params = {"user_id": user.id, "month": month, "id": after, "limit": limit + 1}
    async with services.reads() as session:
        rows = list(await session.execute(_PAGE, params))
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(_CURSOR, page[-1].month.isoformat(), str(page[-1].id))
    return MonthlyReportPage(
        items=[
            MonthlyReportSummary(
                id=r.id, month=f"{r.month:%Y-%m}", ready_at=r.ready_at, html_url=html_url(r.id)
            )
            for r in page
        ],
        next_cursor=next_cursor,
    )


async def _report(services: Services, user_id: uuid.UUID, report_id: uuid.UUID) -> Any:
    async with services.reads() as session:
        row = (await session.execute(_ONE, {"id": report_id, "user_id": user_id})).one_or_none()
    if row is None:
        raise ReportNotFound()
    return row


@router.get("/monthly/{report_id}")
async def get_monthly_report(
    report_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> MonthlyReportPublic:
    """One of the caller's monthly reports: figures and narrative (another's is a 404)."""
    return report_public(await _report(services, user.id, report_id))


@router.get(
    "/monthly/{report_id}/html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def get_monthly_report_html(
    report_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> HTMLResponse:
    """The report as a self-contained HTML page with inline SVG charts."""
    page = report_html(await _report(services, user.id, report_id))
    return HTMLResponse(
        page,
        headers={
            # Data only: no scripts, nothing loaded from elsewhere.
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )
