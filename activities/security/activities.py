"""SecurityActivities: the steps of IncidentWorkflow, one transaction (or one email) each."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlmodel import col
from temporalio import activity

from activities.security.freezes import lift_freeze
from activities.security.incidents import add_note
from core.db import SessionFactory, transaction
from core.email import EmailBackend, OutgoingEmail
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import User, UserStatus
from models.security.payloads import (
    EscalateInput,
    EscalationNotice,
    IncidentStatusInput,
    ReviewInput,
)
from models.security.tables import FreezeKind, Incident, IncidentNote, IncidentStatus
from models.staff.tables import StaffRole, StaffRoleGrant

ON_CALL_ROLES = (StaffRole.ADMIN, StaffRole.COMPLIANCE)  # who hears of an escalation


class SecurityActivities:
    """Incident steps; each is idempotent (a retry leaves the same rows)."""

    def __init__(self, sessions: SessionFactory, email: EmailBackend) -> None:
        self._sessions = sessions
        self._email = email

    @activity.defn(name="security.record_status")
    async def record_status(self, inp: IncidentStatusInput) -> None:
        """Write the incident's new status (acknowledged: who and when; resolved: the
        post-mortem copied from its note)."""
        async with transaction(self._sessions) as session:
            incident = await session.get(Incident, inp.incident_id, with_for_update=True)
            if incident is None or incident.status == IncidentStatus.RESOLVED:
                return
            incident.status = inp.status
            if inp.status == IncidentStatus.ACKNOWLEDGED and incident.acknowledged_at is None:
                incident.acknowledged_by, incident.acknowledged_at = inp.actor_id, utcnow()
            if inp.status == IncidentStatus.RESOLVED:
                incident.resolved_at = utcnow()
                if inp.note_id is not None:
                    note = await session.get(IncidentNote, inp.note_id)
                    incident.postmortem = note.body if note else None
            await record_audit(
                session,
                f"incident.{inp.status.value}",
                actor_user_id=inp.actor_id,
                subject=str(inp.incident_id),
            )

    @activity.defn(name="security.escalate")
    async def escalate(self, inp: EscalateInput) -> list[uuid.UUID]:
        """Record escalation `level` (once) and answer the on-call staff to notify."""
        async with transaction(self._sessions) as session:
            incident = await session.get(Incident, inp.incident_id, with_for_update=True)
            if incident is None:
                return []
            if incident.escalations < inp.level:
                incident.escalations = inp.level
                if incident.status == IncidentStatus.OPEN:
                    incident.status = IncidentStatus.ESCALATED
                await add_note(
                    session,
                    incident.id,
                    None,
                    "escalated",
                    f"not acknowledged in time: escalation {inp.level}",
                    {"level": inp.level},
                )
                await record_audit(
                    session,
                    "incident.escalated",
                    subject=str(incident.id),
                    details={"level": inp.level, "severity": incident.severity},
                )
            on_call = await session.execute(
                select(col(StaffRoleGrant.user_id))
                .join(User, col(User.id) == col(StaffRoleGrant.user_id))
                .where(
                    col(StaffRoleGrant.role).in_([r.value for r in ON_CALL_ROLES]),
                    col(User.status) == UserStatus.ACTIVE,
                )
                .distinct()
            )
            return sorted(on_call.scalars())

    @activity.defn(name="security.email_escalation")
    async def email_escalation(self, inp: EscalationNotice) -> None:
        """Email one on-call staff member (a retry after a lost answer may email twice)."""
        async with self._sessions() as session:
            user = await session.get(User, inp.user_id)
            incident = await session.get(Incident, inp.incident_id)
        if user is None or incident is None:
            return
        await self._email.send(
            OutgoingEmail(
                to=user.email,
                subject=f"[{incident.severity}] incident not acknowledged (escalation {inp.level})",
                body=(
                    f"Incident {incident.id} ({incident.title}) has not been acknowledged "
                    f"within its SLA. Acknowledge it: POST /api/security/incidents/"
                    f"{incident.id}/acknowledge"
                ),
            )
        )

    @activity.defn(name="security.review_fraud")
    async def review_fraud(self, inp: ReviewInput) -> None:
        """Apply staff review of a fraud report: lift the account's fraud freeze, or keep it."""
        async with transaction(self._sessions) as session:
            incident = await session.get(Incident, inp.incident_id, with_for_update=True)
            if incident is None or incident.account_id is None:
                return
            lifted = inp.lift_freeze and await lift_freeze(
                session, incident.account_id, FreezeKind.FRAUD, inp.actor_id
            )
            if inp.lift_freeze and not lifted:
                return  # a retry after the lift: already recorded
            await add_note(
                session,
                incident.id,
                inp.actor_id,
                "review",
                "fraud freeze lifted" if lifted else "fraud freeze kept",
                {"lift_freeze": inp.lift_freeze},
            )
            await record_audit(
                session,
                "incident.fraud_reviewed",
                actor_user_id=inp.actor_id,
                subject=str(incident.id),
                details={"lift_freeze": inp.lift_freeze, "account_id": str(incident.account_id)},
            )

    def main(self) -> list[object]:
        """The database steps (main queue)."""
        return [self.record_status, self.escalate, self.review_fraud]
