"""Monthly report activities: page the customers, compute a report's figures, write its
narrative, publish it (ready + `ai.insight.ready` + `report.ready` in one transaction).

Each is idempotent by the report's uniqueness per (user, month): a rerun, an overlapping run or
a backfill finds the row and never announces it twice.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

from sqlalchemy import text
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ai.assistant import record_usage
from activities.ai.llm import LlmClient
from activities.analytics.periods import add_months, parse_month
from activities.reports.figures import month_figures
from activities.reports.narrative import write_narrative
from core.db import SessionFactory, transaction
from models.base import utcnow
from models.reports.payloads import (
    ComputedReport,
    CustomersPage,
    CustomersPageInput,
    MonthlyReportInput,
    NarratedReport,
    PublishedReport,
    ReportRef,
)

INSIGHT_READY = "ai.insight.ready"
REPORT_READY = "report.ready"
USER_EVENTS = "user.events"
REPORT_NAME = "Monthly report"

# Customers who are active and had an account open at some time in the month.
_CUSTOMERS = text(
    """
SELECT u.id FROM users u
WHERE u.status = 'active' AND (CAST(:after AS uuid) IS NULL OR u.id > CAST(:after AS uuid))
  AND EXISTS (
    SELECT 1 FROM ledger_accounts a
    WHERE a.owner_user_id = u.id AND a.kind = 'customer' AND a.opened_at < :month_end
      AND (a.closed_at IS NULL OR a.closed_at >= :month_start))
ORDER BY u.id LIMIT :limit
"""
)
_UPSERT = text(
    """
INSERT INTO monthly_reports (id, user_id, month, status, figures, narrative, narrative_source,
    created_at, updated_at)
VALUES (:id, :user_id, :month, 'computed', CAST(:figures AS jsonb), '', '', :now, :now)
ON CONFLICT (user_id, month) DO UPDATE SET figures = EXCLUDED.figures, updated_at = :now
    WHERE monthly_reports.status <> 'ready'
RETURNING id, status
"""
)
_FIND = text("SELECT id, status FROM monthly_reports WHERE user_id = :user_id AND month = :month")
_NARRATE = text(
    "UPDATE monthly_reports SET narrative = :narrative, narrative_source = :source, "
    "status = 'narrated', updated_at = :now WHERE id = :id AND status <> 'ready'"
)
_PUBLISH = text(
    "UPDATE monthly_reports SET status = 'ready', ready_at = :now, updated_at = :now "
    "WHERE id = :id AND status = 'narrated' RETURNING user_id, month"
)
_EVENTS = text(
    "INSERT INTO outbox (topic, type, aggregate_id, user_id, payload, created_at) "
    "SELECT :topic, e.type, :report_id, :user_id, CAST(e.payload AS jsonb), :now "
    "FROM unnest(CAST(:types AS text[]), CAST(:payloads AS text[])) "
    "WITH ORDINALITY AS e(type, payload, n) ORDER BY e.n"
)


def _missing(report_id: uuid.UUID) -> ApplicationError:
    return ApplicationError(f"no report {report_id}", type="UnknownReport", non_retryable=True)


class ReportActivities:
    """The monthly reports' database steps (and the narrative, on the external queue)."""

    def __init__(self, sessions: SessionFactory, llm: LlmClient | None = None) -> None:
        self._sessions = sessions
        self._llm = llm  # None: the template writes every narrative

    @activity.defn(name="reports.customers_page")
    async def customers_page(self, inp: CustomersPageInput) -> CustomersPage:
        """Active customers with an account open in the month, after `after_user` (ids only)."""
        first = parse_month(inp.month)
        async with self._sessions() as session:
            rows = await session.execute(
                _CUSTOMERS,
                {
                    "after": inp.after_user,
                    "month_start": first,
                    "month_end": add_months(first, 1),
                    "limit": inp.limit,
                },
            )
            return CustomersPage(user_ids=[r.id for r in rows])

    @activity.defn(name="reports.compute")
    async def compute(self, inp: MonthlyReportInput) -> ComputedReport:
        """Compute the month's figures in SQL and store them (a ready report is left as is)."""
        first = parse_month(inp.month)
        async with transaction(self._sessions) as session:
            figures = await month_figures(session, inp.user_id, first)
            params: dict[str, Any] = {
                "id": uuid.uuid4(),
                "user_id": inp.user_id,
                "month": first,
                "figures": json.dumps(figures),
                "now": utcnow(),
            }
            row = (await session.execute(_UPSERT, params)).one_or_none()
            if row is None:  # already ready: an earlier run finished it
                row = (await session.execute(_FIND, {"user_id": inp.user_id, "month": first})).one()
            return ComputedReport(report_id=row.id, status=row.status)

    @activity.defn(name="reports.narrate")
    async def narrate(self, inp: ReportRef) -> NarratedReport:
        """Write the narrative from the stored figures (the LLM rephrases the template when
        one is configured and sticks to the figures; else the template) and store it, with the
        model's token usage."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    text("SELECT user_id, figures FROM monthly_reports WHERE id = :id"),
                    {"id": inp.report_id},
                )
            ).one_or_none()
        if row is None:
            raise _missing(inp.report_id)
        narrative, source, reply, failure = await write_narrative(row.figures, self._llm)
        async with transaction(self._sessions) as session:
            await session.execute(
                _NARRATE,
                {"id": inp.report_id, "narrative": narrative, "source": source, "now": utcnow()},
            )
            if self._llm is not None and self._llm.remote:
                await record_usage(
                    session,
                    row.user_id,
                    "monthly_report",
                    reply,
                    model=self._llm.model,
                    outcome=failure or "ok",
                )
        return NarratedReport(source=source)

    @activity.defn(name="reports.publish")
    async def publish(self, inp: ReportRef) -> PublishedReport:
        """Mark the report ready and write `ai.insight.ready` and `report.ready` with it; a
        report already ready is not announced again."""
        now = utcnow()
        async with transaction(self._sessions) as session:
            row = (await session.execute(_PUBLISH, {"id": inp.report_id, "now": now})).one_or_none()
            if row is None:
                status = await session.scalar(
                    text("SELECT status FROM monthly_reports WHERE id = :id"),
                    {"id": inp.report_id},
                )
                if status is None:
                    raise _missing(inp.report_id)
                return PublishedReport(report_id=inp.report_id, announced=False)
            await session.execute(_EVENTS, _events(inp.report_id, row.user_id, row.month, now))
        return PublishedReport(report_id=inp.report_id, announced=True)

    def all(self) -> list[Any]:
        """The activities of the main queue."""
        return [self.customers_page, self.compute, self.publish]


def _events(report_id: uuid.UUID, user_id: uuid.UUID, month: date, now: Any) -> dict[str, Any]:
    period = f"{month:%Y-%m}"
    insight = {
        "user_id": str(user_id),
        "insight_id": str(report_id),
        "kind": "monthly_report",
        "period": period,
        "url": f"/api/ai/reports/monthly/{report_id}",
    }
    notice = {
        "user_id": str(user_id),
        "report_id": str(report_id),
        "report_name": f"{REPORT_NAME} {month:%B %Y}",
        "period": period,
    }
    return {
        "topic": USER_EVENTS,
        "report_id": report_id,
        "user_id": user_id,
        "now": now,
        "types": [INSIGHT_READY, REPORT_READY],
        "payloads": [json.dumps(insight), json.dumps(notice)],
    }
