"""Compliance routes (compliance and admin staff): the security audit and the period report.

`POST /api/security/audit` starts a SecurityAuditWorkflow that fills a report row;
`GET /api/security/audit/{id}` reads it back. `GET /api/security/compliance/report` builds the
period's report on the spot (one read-only snapshot), as JSON or CSV.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from activities.security.compliance import CompliancePolicy, compliance_report, report_csv
from api.deps import ClientDep, ServicesDep
from api.staff import StaffCaller, require_roles
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.security.payloads import SecurityAuditInput
from models.security.reports import AuditAccepted, ComplianceReport, SecurityReportPublic
from models.security.tables import ReportStatus, SecurityReport
from models.staff.tables import StaffRole
from temporal.ids import security_audit_workflow_id
from workflows.security_audit import SecurityAuditWorkflow

router = APIRouter(prefix="/api/security", tags=["security"])
Compliance = Annotated[StaffCaller, Depends(require_roles(StaffRole.COMPLIANCE, StaffRole.ADMIN))]
MAX_PERIOD = timedelta(days=366)


@router.post("/audit", status_code=status.HTTP_202_ACCEPTED)
async def start_audit(staff: Compliance, services: ServicesDep, client: ClientDep) -> AuditAccepted:
    """Start a security audit (audit chain, ledger invariants, configuration)."""
    report = SecurityReport(requested_by=staff.id, status=ReportStatus.RUNNING)
    async with transaction(services.sessions) as session:
        session.add(report)
        await record_audit(
            session,
            "security.audit_started",
            actor_user_id=staff.id,
            subject=str(report.id),
            client=client,
        )
    await services.temporal.start_workflow(
        SecurityAuditWorkflow.run,
        SecurityAuditInput(report_id=report.id),
        id=security_audit_workflow_id(report.id),
        task_queue=services.settings.task_queue,
        static_summary="security audit",
    )
    return AuditAccepted(
        report_id=report.id,
        status=ReportStatus.RUNNING,
        status_url=f"/api/security/audit/{report.id}",
    )


@router.get("/audit/{report_id}")
async def get_audit(
    report_id: uuid.UUID, staff: Compliance, services: ServicesDep
) -> SecurityReportPublic:
    """A security audit's report (sections appear as the checks finish)."""
    async with services.reads() as session:
        report = await session.get(SecurityReport, report_id)
    if report is None:
        raise errors.NotFound("unknown report")
    return SecurityReportPublic(
        id=report.id,
        status=report.status,
        sections=report.sections,
        created_at=report.created_at,
        completed_at=report.completed_at,
    )


@router.get(
    "/compliance/report",
    response_model=ComplianceReport,
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_compliance_report(
    staff: Compliance,
    services: ServicesDep,
    client: ClientDep,
    from_: Annotated[datetime, Query(alias="from")],
    to: Annotated[datetime, Query()],
    format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> ComplianceReport | Response:
    """Large-value transactions, structuring, dormant accounts that woke, MFA coverage,
    failed logins and the audit chain over [from, to)."""
    if from_.tzinfo is None or to.tzinfo is None or not from_ < to <= from_ + MAX_PERIOD:
        raise errors.InvalidInput("from < to, timezone-aware, at most a year apart")
    st = services.settings
    policy = CompliancePolicy(
        large_value_minor=st.compliance_large_value_minor,
        structuring_count=st.compliance_structuring_count,
        band_percent=st.compliance_structuring_band_percent,
        dormant_days=st.compliance_dormant_days,
    )
    async with services.sessions() as session:
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        report = await compliance_report(session, from_, to, policy)
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "compliance.report",
            actor_user_id=staff.id,
            client=client,
            details={"from": from_, "to": to, "format": format_, "at": utcnow()},
        )
    if format_ == "csv":
        return Response(report_csv(report), media_type="text/csv")
    return report
