"""Incidents: the rows the API and IncidentWorkflow share (texts stay here, ids travel)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models.security.schemas import IncidentNotePublic, IncidentPublic
from models.security.tables import (
    Incident,
    IncidentNote,
    IncidentSeverity,
    IncidentStatus,
)
from temporal.ids import incident_workflow_id

FRAUD_REPORT = "fraud_report"
MANUAL = "manual"


async def open_incident(
    session: AsyncSession,
    *,
    kind: str,
    severity: IncidentSeverity,
    title: str,
    description: str,
    reported_by: uuid.UUID,
    account_id: uuid.UUID | None = None,
) -> Incident:
    """Store a new incident and its opening note (in the caller's transaction)."""
    incident = Incident(
        kind=kind,
        severity=severity,
        status=IncidentStatus.OPEN,
        title=title,
        reported_by=reported_by,
        account_id=account_id,
    )
    session.add(incident)
    await session.flush()
    await add_note(session, incident.id, reported_by, "opened", description)
    return incident


async def add_note(
    session: AsyncSession,
    incident_id: uuid.UUID,
    author_id: uuid.UUID | None,
    kind: str,
    body: str,
    details: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Append a timeline entry; returns its id (the reference a workflow gets)."""
    note = IncidentNote(
        incident_id=incident_id, author_id=author_id, kind=kind, body=body, details=details or {}
    )
    session.add(note)
    await session.flush()
    return note.id


async def incident_view(session: AsyncSession, incident: Incident) -> IncidentPublic:
    """The API view with the timeline, oldest entry first."""
    notes = await session.execute(
        select(IncidentNote)
        .where(col(IncidentNote.incident_id) == incident.id)
        .order_by(col(IncidentNote.created_at), col(IncidentNote.id))
    )
    return IncidentPublic(
        id=incident.id,
        kind=incident.kind,
        severity=incident.severity,
        status=incident.status,
        title=incident.title,
        account_id=incident.account_id,
        escalations=incident.escalations,
        acknowledged_at=incident.acknowledged_at,
        resolved_at=incident.resolved_at,
        postmortem=incident.postmortem,
        workflow_id=incident_workflow_id(incident.id),
        timeline=[
            IncidentNotePublic(
                kind=n.kind, body=n.body, author_id=n.author_id, created_at=n.created_at
            )
            for n in notes.scalars()
        ],
    )
