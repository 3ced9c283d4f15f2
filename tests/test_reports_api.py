"""The monthly reports API: keyset-paged list, JSON and HTML views of one's own reports only,
and every value in the HTML escaped."""

from __future__ import annotations

import json
import os
import uuid
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import text
from temporalio.client import Client

from activities.ai.llm import LlmClient
from activities.reports.activities import ReportActivities
from api.services import Services
from core.db import transaction
from core.settings import Settings
from models.reports.payloads import MonthlyReportInput, MonthlyReportState, ReportRef
from tests import ledger_support
from tests.ai_support import Simulator, ai_settings, llm  # noqa: F401 - the fixture
from tests.conftest import RunningWorkers
from tests.notifications_support import person
from tests.replay_support import HISTORIES
from tests.reports_support import seed_month
from workflows.monthly_reports import MonthlyReportWorkflow


async def _report(
    client: Client, settings: Settings, user_id: uuid.UUID, month: str
) -> MonthlyReportState:
    handle = await client.start_workflow(
        MonthlyReportWorkflow.run,
        MonthlyReportInput(
            user_id=user_id, month=month, narrative_task_queue=settings.external_task_queue
        ),
        id=f"test-monthly-report-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )
    state = await handle.result()
    if os.environ.get("VORTEX_RECORD_HISTORIES") and month == "2026-10":
        (HISTORIES / "monthly_report_ready.json").write_text(
            (await handle.fetch_history()).to_json()
        )
    return state


async def test_reports_are_listed_paged_and_shown_as_json_and_html_to_their_owner_only(
    api: httpx.AsyncClient,
    services: Services,
    temporal_client: Client,
    settings: Settings,
    workers: RunningWorkers,
) -> None:
    ada = await person(services, "ada")
    account = await ledger_support.funded_account(services.sessions, ada.id, 0, "EUR")
    await seed_month(services.sessions, ada.id, account)
    october = await _report(temporal_client, settings, ada.id, "2026-10")
    september = await _report(temporal_client, settings, ada.id, "2026-09")
    assert october.status == september.status == "ready"
    assert october.announced

    first = (
        await api.get("/api/ai/reports/monthly", params={"limit": 1}, headers=ada.headers)
    ).json()
    assert [i["month"] for i in first["items"]] == ["2026-10"]
    second = (
        await api.get(
            "/api/ai/reports/monthly",
            params={"limit": 1, "cursor": first["next_cursor"]},
            headers=ada.headers,
        )
    ).json()
    assert [i["month"] for i in second["items"]] == ["2026-09"]
    assert second["next_cursor"] is None

    report = (
        await api.get(f"/api/ai/reports/monthly/{october.report_id}", headers=ada.headers)
    ).json()
    eur = report["currencies"][0]
    assert eur["flows"]["spending"] == {
        "amount": "1134.50",
        "amount_minor": 113_450,
        "currency": "EUR",
    }
    assert eur["flows"]["income"]["amount_minor"] == 300_000
    assert eur["previous_spending"]["amount_minor"] == 7_000
    assert report["narrative_source"] == "template"
    assert "1134.50 EUR" in report["narrative"]
    if sample := os.environ.get("VORTEX_SAMPLE_REPORT_DIR"):  # the README's sample, by hand
        page = await api.get(report["html_url"], headers=ada.headers)
        (Path(sample) / "monthly-report.json").write_text(json.dumps(report, indent=2))
        (Path(sample) / "monthly-report.html").write_text(page.text)

    # Text that reaches the page is escaped, never markup.
    async with transaction(services.sessions) as session:
        await session.execute(
            text("UPDATE monthly_reports SET narrative = :n WHERE id = :id"),
            {"n": "<script>alert(1)</script> & more", "id": october.report_id},
        )
    page = await api.get(report["html_url"], headers=ada.headers)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page.text
    assert page.text.count("<svg") == 2
    assert "Groceries" in page.text

    bob = await person(services, "bob")
    for path in (f"/api/ai/reports/monthly/{october.report_id}", report["html_url"]):
        hidden = await api.get(path, headers=bob.headers)
        assert hidden.status_code == 404
        assert hidden.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/api/ai/reports/monthly", headers=bob.headers)).json()["items"] == []
    bad = await api.get("/api/ai/reports/monthly", params={"cursor": "nope"}, headers=ada.headers)
    assert bad.status_code == 422


async def test_the_narrative_comes_from_the_llm_only_when_it_sticks_to_the_figures(
    services: Services,
    settings: Settings,
    llm: Simulator,  # noqa: F811 - the simulator fixture
) -> None:
    ada = await person(services, "ada")
    account = await ledger_support.funded_account(services.sessions, ada.id, 0, "EUR")
    await seed_month(services.sessions, ada.id, account)
    reports = ReportActivities(
        services.sessions, LlmClient.from_settings(ai_settings(settings, llm.url))
    )
    october = await reports.compute(MonthlyReportInput(user_id=ada.id, month="2026-10"))

    told = await reports.narrate(ReportRef(report_id=october.report_id))
    assert told.source == "llm"
    await llm.set(mode="hallucinate")  # adds a figure the report does not have
    september = await reports.compute(MonthlyReportInput(user_id=ada.id, month="2026-09"))
    kept = await reports.narrate(ReportRef(report_id=september.report_id))
    assert kept.source == "template"

    async with services.sessions() as session:
        rows: dict[date, str] = dict(
            (
                await session.execute(
                    text("SELECT month, narrative FROM monthly_reports WHERE user_id = :u"),
                    {"u": ada.id},
                )
            )
            .tuples()
            .all()
        )
        usage = await session.scalar(
            text("SELECT count(*) FROM ai_llm_usage WHERE purpose = 'monthly_report'")
        )
    assert rows[date(2026, 10, 1)].startswith("Here is your summary. In EUR you received 3000.00")
    assert "123.45" not in rows[date(2026, 9, 1)]
    assert usage == 2
