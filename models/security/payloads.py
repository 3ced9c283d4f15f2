"""Workflow and activity payloads of the security domain: ids and references only."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from models.security.tables import IncidentSeverity, IncidentStatus


class IncidentInput(BaseModel):
    """Start of an `IncidentWorkflow`; the incident's texts are in its row."""

    incident_id: uuid.UUID
    severity: IncidentSeverity
    ack_sla_seconds: int
    max_escalations: int
    activity_timeout_seconds: float = 30.0
    email_task_queue: str = ""


class IncidentState(BaseModel):
    """The `status` query's answer."""

    incident_id: uuid.UUID
    status: IncidentStatus
    escalations: int = 0
    notes: int = 0
    fraud_reviewed: bool = False


class IncidentAck(BaseModel):
    """A person took the incident (signal `acknowledge`)."""

    actor_id: uuid.UUID


class IncidentNoteAdded(BaseModel):
    """A timeline entry was stored (signal `note_added`: the text is in `incident_notes`)."""

    note_id: uuid.UUID


class IncidentResolution(BaseModel):
    """Update `resolve`: the post-mortem note is stored, by reference."""

    actor_id: uuid.UUID
    note_id: uuid.UUID


class FraudReview(BaseModel):
    """Signal `review` of a fraud report: lift the freeze or keep it."""

    actor_id: uuid.UUID
    lift_freeze: bool


class IncidentStatusInput(BaseModel):
    """Record a status change of an incident (idempotent: same values, same row)."""

    incident_id: uuid.UUID
    status: IncidentStatus
    actor_id: uuid.UUID | None = None
    note_id: uuid.UUID | None = None


class EscalateInput(BaseModel):
    """Escalation number `level` of an incident not acknowledged in time."""

    incident_id: uuid.UUID
    level: int


class EscalationNotice(BaseModel):
    """Email one on-call staff member about an escalation."""

    incident_id: uuid.UUID
    level: int
    user_id: uuid.UUID


class ReviewInput(BaseModel):
    """Apply a fraud review to the incident's account."""

    incident_id: uuid.UUID
    actor_id: uuid.UUID
    lift_freeze: bool


class RiskFacts(BaseModel):
    """What the engine knows about a payment (amount 0: assessing a customer, not a payment)."""

    amount: int = 0
    payments_last_hour: int = 0
    history_count: int = 0
    typical_amount: int | None = None
    new_beneficiary: bool | None = None  # None: no beneficiary named
    account_age_days: float = 0.0
    failed_logins_24h: int = 0
    security_change_hours_ago: float | None = None


class RiskFactor(BaseModel):
    """One factor's contribution, in points, and why."""

    name: str
    points: int
    detail: str


class RiskScore(BaseModel):
    """The decision (`allow`, `review`, `deny`), the reason, the score and every factor."""

    decision: str
    reason: str | None = None
    score: int
    factors: list[RiskFactor]


class SecurityAuditInput(BaseModel):
    """Start of a `SecurityAuditWorkflow`: the report row to fill."""

    report_id: uuid.UUID
    activity_timeout_seconds: float = 120.0


class AuditStepInput(BaseModel):
    """One check of an audit: it writes its own section of the report."""

    report_id: uuid.UUID


class AuditFinishInput(BaseModel):
    """The audit's verdict, written last."""

    report_id: uuid.UUID
    passed: bool


class SecurityAuditState(BaseModel):
    """The `status` query's answer: which checks ran and passed."""

    report_id: uuid.UUID
    checks: dict[str, bool] = {}
    finished: bool = False


class DataExportInput(BaseModel):
    """Start of a `DataExportWorkflow`: the export row to fill (the customer is in the row)."""

    export_id: uuid.UUID
    activity_timeout_seconds: float = 120.0
