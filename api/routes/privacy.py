"""Privacy routes of the customer: a data export (GDPR art. 15) run as a workflow and
downloaded as a JSON archive, and erasure (art. 17), which pseudonymizes personal data, keeps
the ledger and the audit log (and says so), and ends the login. Both are idempotent."""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

from fastapi import APIRouter, Response, status
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.security.privacy import erase_customer, is_erased
from api.auth import errors as auth_errors
from api.auth.totp import consume_totp, user_key
from api.auth.user_status import set_user_status
from api.deps import ClientDep, CurrentUser, ServicesDep
from api.openapi_problems import problems
from api.services import Services
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import User, UserStatus
from models.ledger.tables import LedgerAccount
from models.payments.tables import TERMINAL_STATUSES, Payment
from models.security.payloads import DataExportInput
from models.security.reports import ErasureBody, ErasureResult, ExportPublic
from models.security.tables import DataExport, ReportStatus
from temporal.ids import data_export_workflow_id
from workflows.data_export import DataExportWorkflow

router = APIRouter(prefix="/api/privacy", tags=["privacy"])
EXPORT_REUSE = timedelta(hours=24)  # a repeated request within a day answers the same export


class ErasureBlocked(errors.Conflict):
    """Money is still held for the customer: it must be paid out first."""

    type, title = "erasure-blocked", "Erasure needs empty accounts and no running payments"


def _public(export: DataExport) -> ExportPublic:
    url = f"/api/privacy/exports/{export.id}"
    ready = export.status == ReportStatus.READY
    return ExportPublic(
        id=export.id,
        status=export.status,
        created_at=export.created_at,
        completed_at=export.completed_at,
        status_url=url,
        download_url=f"{url}/archive" if ready else None,
    )


@router.post(
    "/exports",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_200_OK: {"model": ExportPublic, "description": "a repeat: the same export"},
    },
)
async def request_export(
    user: CurrentUser, services: ServicesDep, client: ClientDep, response: Response
) -> ExportPublic:
    """Export everything held on the caller; a repeat within a day answers the same export."""
    async with transaction(services.sessions) as session:
        await session.get(User, user.id, with_for_update=True)  # one request at a time
        export = await session.scalar(
            select(DataExport)
            .where(
                col(DataExport.user_id) == user.id,
                col(DataExport.created_at) > utcnow() - EXPORT_REUSE,
                col(DataExport.status).in_([ReportStatus.RUNNING, ReportStatus.READY]),
            )
            .order_by(col(DataExport.created_at).desc())
            .limit(1)
        )
        created = export is None
        if export is None:
            export = DataExport(user_id=user.id, status=ReportStatus.RUNNING)
            session.add(export)
        await record_audit(
            session,
            "privacy.export_requested",
            actor_user_id=user.id,
            subject=str(export.id),
            client=client,
            details={"repeat": not created},
        )
    if export.status == ReportStatus.RUNNING:  # a repeat restarts a start that was lost
        await _start(services, export)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(export)


async def _start(services: Services, export: DataExport) -> None:
    """Start the export's workflow once: attach to a running one, never run a closed again."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await services.temporal.start_workflow(
            DataExportWorkflow.run,
            DataExportInput(export_id=export.id),
            id=data_export_workflow_id(export.id),
            task_queue=services.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary="data export",
        )


async def _own_export(services: Services, user_id: uuid.UUID, export_id: uuid.UUID) -> DataExport:
    async with services.reads() as session:
        export = await session.get(DataExport, export_id)
    if export is None or export.user_id != user_id:
        raise errors.NotFound("unknown export")
    return export


@router.get("/exports/{export_id}")
async def get_export(
    export_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> ExportPublic:
    """An export's status and, once ready, its download URL."""
    return _public(await _own_export(services, user.id, export_id))


@router.get("/exports/{export_id}/archive", responses={200: {"content": {"application/json": {}}}})
async def download_export(
    export_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> Response:
    """The archive (JSON: every table's rows about the caller; credentials withheld)."""
    export = await _own_export(services, user.id, export_id)
    if export.status != ReportStatus.READY or export.archive is None:
        raise errors.InvalidState("the export is not ready yet")
    name = f"vortexcore-export-{export.id}.json"
    return Response(
        export.archive,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/erasure", responses=problems(401, 409, 429))
async def erase(
    body: ErasureBody, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> ErasureResult:
    """Erase the caller's personal data (TOTP confirms); says what was kept and why. The
    login ends with it; a repeat answers the same result."""
    await services.throttle.ensure_allowed(user_key(user.id), None)
    async with transaction(services.sessions) as session:
        row = await session.get(User, user.id, with_for_update=True)
        assert row is not None
        if is_erased(row):
            return await erase_customer(session, row, utcnow())
        held = await session.scalar(
            select(func.count())
            .select_from(LedgerAccount)
            .where(
                col(LedgerAccount.owner_user_id) == user.id,
                (col(LedgerAccount.posted) != 0) | (col(LedgerAccount.held) != 0),
            )
        )
        running = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(
                col(Payment.user_id) == user.id,
                col(Payment.status).not_in([s.value for s in TERMINAL_STATUSES]),
            )
        )
        accepted = await consume_totp(session, services.crypto, row, body.totp_code)
        if accepted and not held and not running:
            result = await erase_customer(session, row, utcnow())
        else:
            await record_audit(
                session,
                "privacy.erasure_refused",
                actor_user_id=user.id,
                client=client,
                details={"code_accepted": accepted, "funded_accounts": held, "payments": running},
            )
    if not accepted:
        await services.throttle.record_failure(user_key(user.id), client)
        raise auth_errors.InvalidMfaCode()
    if held or running:
        raise ErasureBlocked("pay out every account and let running payments finish first")
    await set_user_status(
        services.sessions,
        services.redis,
        services.settings,
        user.id,
        UserStatus.DISABLED,
        reason="erased at the customer's request",
        actor="privacy",
    )
    return result
