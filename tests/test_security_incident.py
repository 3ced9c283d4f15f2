"""IncidentWorkflow on the time-skipping server, driven through the API: an incident nobody
acknowledges is escalated by email to the on-call staff after each SLA (up to the maximum);
acknowledgement stops it; notes and the post-mortem end up on the timeline."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.staff.tables import StaffRole
from temporal.ids import incident_workflow_id
from tests.replay_support import HISTORIES, recorded, replay, replay_history
from tests.security_support import Member, audit_rows, new_member
from workers.assembly import WorkerDeps, build_workers
from workflows.incident import IncidentWorkflow

SLA = 900


@pytest.fixture
async def incident_api(
    time_skipping: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The API and the workers on the time-skipping server (SLA 15 minutes, 2 escalations)."""
    tuned = settings.model_copy(
        update={"incident_ack_sla_seconds": SLA, "incident_max_escalations": 2}
    )
    services = await Services.connect(tuned, temporal=time_skipping.client)
    workers = build_workers(
        time_skipping.client, WorkerDeps(settings=tuned, sessions=sessions, email=outbox)
    )
    try:
        async with workers[0], workers[1]:
            transport = httpx.ASGITransport(app=create_app(tuned, services))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, services
    finally:
        await services.close()


async def _staff(services: Services) -> dict[str, Member]:
    return {
        "admin": await new_member(services, "admin@bank.example", StaffRole.ADMIN),
        "compliance": await new_member(services, "comp@bank.example", StaffRole.COMPLIANCE),
        "support": await new_member(services, "support@bank.example", StaffRole.SUPPORT),
        "customer": await new_member(services, "cust@example.com", None),
    }


async def _open(api: httpx.AsyncClient, member: Member) -> str:
    opened = await api.post(
        "/api/security/incident",
        headers=member.auth,
        json={"severity": "sev2", "title": "card testing burst", "description": "spike of 402s"},
    )
    assert opened.status_code == 202, opened.text
    return str(opened.json()["id"])


async def test_an_unacknowledged_incident_is_escalated_after_each_sla_up_to_the_maximum(
    incident_api: tuple[httpx.AsyncClient, Services],
    time_skipping: WorkflowEnvironment,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
) -> None:
    api, services = incident_api
    staff = await _staff(services)
    incident_id = await _open(api, staff["support"])
    url = f"/api/security/incidents/{incident_id}"

    await time_skipping.sleep(timedelta(seconds=SLA - 60))
    before_sla = (await api.get(url, headers=staff["support"].auth)).json()
    await time_skipping.sleep(timedelta(seconds=120))
    first = (await api.get(url, headers=staff["support"].auth)).json()
    await time_skipping.sleep(timedelta(seconds=SLA * 5))
    capped = (await api.get(url, headers=staff["support"].auth)).json()

    assert (before_sla["status"], before_sla["escalations"]) == ("open", 0)
    assert (first["status"], first["escalations"]) == ("escalated", 1)
    assert capped["escalations"] == 2  # the maximum: no more emails after it
    mails = sorted((m.to, m.subject[-14:]) for m in outbox.outbox)
    assert mails == [
        ("admin@bank.example", "(escalation 1)"),
        ("admin@bank.example", "(escalation 2)"),
        ("comp@bank.example", "(escalation 1)"),
        ("comp@bank.example", "(escalation 2)"),
    ]
    assert [e.details["level"] for e in await audit_rows(sessions, "incident.escalated")] == [1, 2]

    await api.post(f"{url}/acknowledge", headers=staff["admin"].auth)
    resolved = await api.post(
        f"{url}/resolve", headers=staff["admin"].auth, json={"postmortem": "paged too late"}
    )
    assert resolved.json()["status"] == "resolved"
    history = await time_skipping.client.get_workflow_handle(
        incident_workflow_id(uuid.UUID(incident_id))
    ).fetch_history()
    await replay_history(history, IncidentWorkflow)
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "incident_escalated_resolved.json").write_text(history.to_json())


@pytest.mark.parametrize("path", recorded("IncidentWorkflow"), ids=lambda p: p.stem)
async def test_recorded_incident_histories_still_replay(path: Path) -> None:
    await replay(path, IncidentWorkflow)


async def test_acknowledgement_stops_escalation_and_resolution_keeps_the_postmortem(
    incident_api: tuple[httpx.AsyncClient, Services],
    time_skipping: WorkflowEnvironment,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
) -> None:
    api, services = incident_api
    staff = await _staff(services)
    incident_id = await _open(api, staff["admin"])
    url = f"/api/security/incidents/{incident_id}"

    by_customer = await api.post(f"{url}/acknowledge", headers=staff["customer"].auth)
    acked = await api.post(f"{url}/acknowledge", headers=staff["support"].auth)
    await time_skipping.sleep(timedelta(seconds=SLA * 3))
    noted = await api.post(
        f"{url}/notes", headers=staff["support"].auth, json={"body": "blocked the BIN range"}
    )
    resolved = await api.post(
        f"{url}/resolve",
        headers=staff["compliance"].auth,
        json={"postmortem": "root cause: no velocity limit on card checks"},
    )
    again = await api.post(
        f"{url}/resolve", headers=staff["compliance"].auth, json={"postmortem": "again"}
    )
    late_note = await api.post(f"{url}/notes", headers=staff["support"].auth, json={"body": "x"})

    assert by_customer.status_code == 404  # not staff: the route does not exist for them
    assert acked.status_code == 200, acked.text
    assert noted.status_code == 201, noted.text
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert body["status"] == "resolved"
    assert body["escalations"] == 0
    assert body["postmortem"] == "root cause: no velocity limit on card checks"
    assert [n["kind"] for n in body["timeline"]] == [
        "opened",
        "acknowledged",
        "update",
        "postmortem",
    ]
    assert again.status_code == 409
    assert late_note.status_code == 409
    assert list(outbox.outbox) == []
    denied = await audit_rows(sessions, "staff.denied")
    assert [d.actor_user_id for d in denied] == [staff["customer"].user_id]
    actions = [
        e.action for e in await audit_rows(sessions, "incident.acknowledged", "incident.resolved")
    ]
    assert actions == ["incident.acknowledged", "incident.resolved"]
