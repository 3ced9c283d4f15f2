"""Staff routes of the legacy migration: what `vortex legacy-migration` does, for staff with the
`ops` role (every action audited with its reason). Both go through
`activities/migration/control.py`; the Temporal UI's signals and updates reach the same
workflows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from activities.migration.control import (
    DomainStatus,
    MigrationAction,
    MigrationRefused,
    act,
    domain_statuses,
)
from api.deps import ClientDep, ServicesDep
from api.openapi_problems import problems
from api.staff import StaffCaller, audit_staff_action, require_roles
from core import errors
from models.migration.schemas import MigrationActionDone, MigrationStatusList, MigrationStatusPublic
from models.migration.tables import MigrationDomain, MigrationStage
from models.security.schemas import ReasonBody
from models.staff.tables import StaffRole

router = APIRouter(prefix="/api/staff/migrations", tags=["staff"])
OpsStaff = Annotated[StaffCaller, Depends(require_roles(StaffRole.OPS))]
# Signals are only sent: the workflow acts on them at its next step.
_SENT_ONLY = {
    MigrationAction.START,
    MigrationAction.PAUSE,
    MigrationAction.RESUME,
    MigrationAction.ABORT,
}


class MigrationActionRefused(errors.Conflict):
    """The migration action was not taken (out of order, not running, or its checks failed)."""

    type, title = "migration-refused", "The migration action was refused"


def _public(found: DomainStatus) -> MigrationStatusPublic:
    run, progress = found.run, found.progress
    return MigrationStatusPublic(
        domain=found.domain,
        stage=progress.stage if progress else MigrationStage(run.stage) if run else None,
        running=progress is not None or found.unanswered,
        progress_unavailable=found.unanswered,
        backfilled=progress.backfilled if progress else run.backfilled if run else 0,
        quarantined=progress.quarantined if progress else run.quarantined if run else 0,
        started_at=run.started_at if run else None,
        cutover_at=run.cutover_at if run else None,
        progress=progress,
    )


@router.get("")
async def list_migrations(staff: OpsStaff, services: ServicesDep) -> MigrationStatusList:
    """Every domain's migration: stage, counts and, while running, rate, ETA and checks."""
    found = await domain_statuses(services.temporal, services.sessions)
    return MigrationStatusList(items=[_public(f) for f in found])


@router.get("/{domain}")
async def migration_status(
    domain: MigrationDomain, staff: OpsStaff, services: ServicesDep
) -> MigrationStatusPublic:
    """One domain's migration."""
    (found,) = await domain_statuses(services.temporal, services.sessions, domain)
    return _public(found)


@router.post(
    "/{domain}/{action}",
    responses={status.HTTP_202_ACCEPTED: {"model": MigrationActionDone}, **problems(409)},
)
async def migration_action(
    domain: MigrationDomain,
    action: MigrationAction,
    body: ReasonBody,
    staff: OpsStaff,
    services: ServicesDep,
    client: ClientDep,
    response: Response,
) -> MigrationActionDone:
    """Start, pause, resume or abort a domain's migration (202: sent to its workflow), or cut
    it over, roll it back or finalize it (200: done; 409 with the failed checks if refused)."""
    try:
        outcome = await act(services.temporal, services.sessions, services.settings, domain, action)
    except MigrationRefused as refused:
        verification = (
            refused.verification.model_dump(mode="json") if refused.verification else None
        )
        await audit_staff_action(
            services,
            staff,
            f"staff.migration_{action.value}",
            domain.value,
            client,
            reason=body.reason,
            outcome=f"refused: {refused}",
        )
        raise MigrationActionRefused(str(refused), verification=verification) from refused
    await audit_staff_action(
        services,
        staff,
        f"staff.migration_{action.value}",
        domain.value,
        client,
        reason=body.reason,
        outcome=outcome.said,
    )
    if action in _SENT_ONLY:
        response.status_code = status.HTTP_202_ACCEPTED
    return MigrationActionDone(
        domain=domain,
        action=action.value,
        outcome=outcome.said,
        workflow_id=outcome.workflow_id,
        verification=outcome.verification,
    )
