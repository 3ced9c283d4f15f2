"""Security tables: outbound-payment freezes, break-glass grants, incidents, login sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk


class FreezeKind(StrEnum):
    """Who froze the account: the customer (lifted by the customer with TOTP) or a fraud
    report (lifted only by staff review)."""

    SELF = "self"
    FRAUD = "fraud"


class AccountFreeze(SQLModel, table=True):
    """Outbound payments from `account_id` are refused while a row has no `lifted_at`."""

    __tablename__ = "account_freezes"
    __table_args__ = (
        CheckConstraint(sql_in("kind", FreezeKind), name="ck_account_freezes_kind"),
        # One active freeze per account and kind: freezing twice is idempotent.
        Index(
            "ux_account_freezes_active",
            "account_id",
            "kind",
            unique=True,
            postgresql_where=text("lifted_at IS NULL"),
        ),
    )

    id: uuid.UUID = uuid_pk()
    account_id: uuid.UUID = Field(foreign_key="ledger_accounts.id", ondelete="RESTRICT")
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT", index=True)
    kind: FreezeKind = Field(sa_type=String(8))
    incident_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = timestamp(server_now=True)
    lifted_at: datetime | None = timestamp(nullable=True)
    lifted_by: uuid.UUID | None = Field(default=None)


class BreakGlassGrant(SQLModel, table=True):
    """Support may read one customer's data until `expires_at`, for the audited reason."""

    __tablename__ = "break_glass_grants"

    id: uuid.UUID = uuid_pk()
    staff_user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT", index=True)
    customer_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    reason: str = Field(max_length=500)
    created_at: datetime = timestamp(server_now=True)
    expires_at: datetime = timestamp()


class IncidentSeverity(StrEnum):
    """How bad: sev1 is an outage or active fraud, sev4 a note."""

    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class IncidentStatus(StrEnum):
    """Where an incident stands (the workflow writes it)."""

    OPEN = "open"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Incident(SQLModel, table=True):
    """One incident; its texts live here (the workflow passes ids only)."""

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(sql_in("severity", IncidentSeverity), name="ck_incidents_severity"),
        CheckConstraint(sql_in("status", IncidentStatus), name="ck_incidents_status"),
    )

    id: uuid.UUID = uuid_pk()
    kind: str = Field(max_length=32)  # "manual" or "fraud_report"
    severity: IncidentSeverity = Field(sa_type=String(8))
    status: IncidentStatus = Field(sa_type=String(16))
    title: str = Field(max_length=200)
    reported_by: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    account_id: uuid.UUID | None = Field(default=None, foreign_key="ledger_accounts.id")
    escalations: int = 0
    acknowledged_by: uuid.UUID | None = Field(default=None)
    acknowledged_at: datetime | None = timestamp(nullable=True)
    resolved_at: datetime | None = timestamp(nullable=True)
    postmortem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = timestamp(server_now=True)


class IncidentNote(SQLModel, table=True):
    """One timeline entry of an incident (written by the API or the workflow)."""

    __tablename__ = "incident_notes"

    id: uuid.UUID = uuid_pk()
    incident_id: uuid.UUID = Field(foreign_key="incidents.id", ondelete="CASCADE", index=True)
    author_id: uuid.UUID | None = Field(default=None)
    kind: str = Field(max_length=32)  # opened, update, acknowledged, escalated, resolved, review
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = timestamp(server_now=True)


class LoginSession(SQLModel, table=True):
    """A login session (one refresh-token family) as the customer sees it: device, last use."""

    __tablename__ = "login_sessions"

    family_id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    device: str = Field(max_length=120)
    client: str = Field(max_length=100)
    created_at: datetime = timestamp(server_now=True)
    last_used_at: datetime = timestamp(server_now=True)


class ReportStatus(StrEnum):
    """Where a stored report or archive stands."""

    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    READY = "ready"


class SecurityReport(SQLModel, table=True):
    """A security audit's report: each check writes its section (the workflow passes ids)."""

    __tablename__ = "security_reports"
    __table_args__ = (
        CheckConstraint(sql_in("status", ReportStatus), name="ck_security_reports_status"),
    )

    id: uuid.UUID = uuid_pk()
    requested_by: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    status: ReportStatus = Field(sa_type=String(16))
    sections: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = timestamp(server_now=True)
    completed_at: datetime | None = timestamp(nullable=True)


class DataExport(SQLModel, table=True):
    """A customer's data export (GDPR art. 15): the archive is stored here to download."""

    __tablename__ = "data_exports"
    __table_args__ = (
        CheckConstraint(sql_in("status", ReportStatus), name="ck_data_exports_status"),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT", index=True)
    status: ReportStatus = Field(sa_type=String(16))
    archive: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = timestamp(server_now=True)
    completed_at: datetime | None = timestamp(nullable=True)
