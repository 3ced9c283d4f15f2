"""Security routes: incidents (staff) and fraud reports (customers).

Opening an incident starts an IncidentWorkflow; acknowledgement, timeline notes and fraud
reviews are signals, resolution an update. A fraud report freezes outbound payments from the
customer's account at once and opens a fraud incident; only staff review lifts the freeze.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import select
from sqlmodel import col

from activities.security.freezes import freeze_account
from activities.security.incidents import (
    FRAUD_REPORT,
    MANUAL,
    add_note,
    incident_view,
    open_incident,
)
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.ownership import owned_account
from api.security.incidents import IncidentClosed, incident_handle, signal_incident, start_incident
from api.services import Services
from api.staff import StaffCaller, require_roles
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.security.payloads import FraudReview, IncidentAck, IncidentNoteAdded, IncidentResolution
from models.security.schemas import (
    FraudReportCreate,
    FraudReviewBody,
    IncidentCreate,
    IncidentNoteBody,
    IncidentPublic,
    ResolveIncidentBody,
)
from models.security.tables import (
    AccountFreeze,
    FreezeKind,
    Incident,
    IncidentSeverity,
    IncidentStatus,
)
from models.staff.tables import StaffRole

router = APIRouter(prefix="/api/security", tags=["security"])
AnyStaff = Annotated[StaffCaller, Depends(require_roles(*StaffRole))]
Reviewer = Annotated[StaffCaller, Depends(require_roles(StaffRole.COMPLIANCE, StaffRole.ADMIN))]


async def _view(services: Services, incident_id: uuid.UUID) -> IncidentPublic:
    async with services.reads() as session:
        incident = await session.get(Incident, incident_id)
        if incident is None:
            raise errors.NotFound("unknown incident")
        return await incident_view(session, incident)


@router.post("/incident", status_code=status.HTTP_202_ACCEPTED)
async def open_new_incident(
    body: IncidentCreate, staff: AnyStaff, services: ServicesDep, client: ClientDep
) -> IncidentPublic:
    """Open an incident: its workflow escalates it until a person acknowledges it."""
    async with transaction(services.sessions) as session:
        incident = await open_incident(
            session,
            kind=MANUAL,
            severity=body.severity,
            title=body.title,
            description=body.description,
            reported_by=staff.id,
        )
        await record_audit(
            session,
            "incident.opened",
            actor_user_id=staff.id,
            subject=str(incident.id),
            client=client,
            details={"severity": body.severity, "kind": MANUAL},
        )
    await start_incident(services, incident)
    return await _view(services, incident.id)


@router.get("/incidents/{incident_id}")
async def get_incident(
    incident_id: uuid.UUID, staff: AnyStaff, services: ServicesDep
) -> IncidentPublic:
    """An incident with its timeline."""
    return await _view(services, incident_id)


@router.post("/incidents/{incident_id}/acknowledge")
async def acknowledge_incident(
    incident_id: uuid.UUID, staff: AnyStaff, services: ServicesDep, client: ClientDep
) -> IncidentPublic:
    """Take the incident (stops its escalation)."""
    await _view(services, incident_id)
    await signal_incident(services, incident_id, "acknowledge", IncidentAck(actor_id=staff.id))
    async with transaction(services.sessions) as session:
        await add_note(session, incident_id, staff.id, "acknowledged", "")
        await record_audit(
            session,
            "incident.ack_requested",
            actor_user_id=staff.id,
            subject=str(incident_id),
            client=client,
        )
    return await _view(services, incident_id)


@router.post("/incidents/{incident_id}/notes", status_code=status.HTTP_201_CREATED)
async def add_incident_note(
    incident_id: uuid.UUID,
    body: IncidentNoteBody,
    staff: AnyStaff,
    services: ServicesDep,
    client: ClientDep,
) -> IncidentPublic:
    """Add a timeline update."""
    await _view(services, incident_id)
    async with transaction(services.sessions) as session:
        note_id = await add_note(session, incident_id, staff.id, "update", body.body)
        await record_audit(
            session,
            "incident.note",
            actor_user_id=staff.id,
            subject=str(incident_id),
            client=client,
        )
    await signal_incident(services, incident_id, "note_added", IncidentNoteAdded(note_id=note_id))
    return await _view(services, incident_id)


@router.post("/incidents/{incident_id}/resolve")
async def resolve_incident(
    incident_id: uuid.UUID,
    body: ResolveIncidentBody,
    staff: AnyStaff,
    services: ServicesDep,
    client: ClientDep,
) -> IncidentPublic:
    """Resolve with the post-mortem note; answers once the workflow has recorded it."""
    if (await _view(services, incident_id)).status == IncidentStatus.RESOLVED:
        raise IncidentClosed("the incident is already resolved")
    async with transaction(services.sessions) as session:
        note_id = await add_note(session, incident_id, staff.id, "postmortem", body.postmortem)
        await record_audit(
            session,
            "incident.resolve_requested",
            actor_user_id=staff.id,
            subject=str(incident_id),
            client=client,
        )
    resolution = IncidentResolution(actor_id=staff.id, note_id=note_id)
    await signal_incident(services, incident_id, "resolve", resolution)
    with contextlib.suppress(TimeoutError):  # the answer shows the resolution when it is quick
        await asyncio.wait_for(
            incident_handle(services, incident_id).result(),
            services.settings.payment_sync_wait_seconds,
        )
    return await _view(services, incident_id)


@router.post("/incidents/{incident_id}/review", status_code=status.HTTP_202_ACCEPTED)
async def review_fraud_report(
    incident_id: uuid.UUID,
    body: FraudReviewBody,
    staff: Reviewer,
    services: ServicesDep,
    client: ClientDep,
) -> IncidentPublic:
    """Review a fraud report: lift the account's fraud freeze, or keep it (with a reason)."""
    found = await _view(services, incident_id)
    if found.kind != FRAUD_REPORT:
        raise errors.InvalidState("only a fraud report is reviewed")
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "incident.review_requested",
            actor_user_id=staff.id,
            subject=str(incident_id),
            client=client,
            details={"lift_freeze": body.lift_freeze, "reason": body.reason},
        )
    await signal_incident(
        services,
        incident_id,
        "review",
        FraudReview(actor_id=staff.id, lift_freeze=body.lift_freeze),
    )
    return await _view(services, incident_id)


@router.post("/fraud-reports", status_code=status.HTTP_202_ACCEPTED)
async def report_fraud(
    body: FraudReportCreate,
    user: CurrentUser,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
) -> IncidentPublic:
    """Report fraud on one's own account: outbound payments freeze at once (payments already
    running included) until staff review the report. A second report while frozen answers
    the open one (200)."""
    async with transaction(services.sessions) as session:
        await owned_account(session, user.id, body.account_id, lock=True)
        open_freeze = await session.scalar(
            select(AccountFreeze).where(
                col(AccountFreeze.account_id) == body.account_id,
                col(AccountFreeze.kind) == FreezeKind.FRAUD,
                col(AccountFreeze.lifted_at).is_(None),
            )
        )
        if open_freeze is not None and open_freeze.incident_id is not None:
            incident = await session.get(Incident, open_freeze.incident_id)
            assert incident is not None
            created = False
        else:
            incident = await open_incident(
                session,
                kind=FRAUD_REPORT,
                severity=IncidentSeverity.SEV2,
                title="Fraud reported by the customer",
                description=body.description,
                reported_by=user.id,
                account_id=body.account_id,
            )
            await freeze_account(session, user.id, body.account_id, FreezeKind.FRAUD, incident.id)
            await record_audit(
                session,
                "fraud.reported",
                actor_user_id=user.id,
                subject=str(body.account_id),
                client=client,
                details={"incident_id": str(incident.id)},
            )
            created = True
    await start_incident(services, incident)
    if not created:
        response.status_code = status.HTTP_200_OK
    return await _view(services, incident.id)
