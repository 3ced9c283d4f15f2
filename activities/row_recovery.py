"""Links and registrations that must never stay stuck: a row whose workflow never started (the
API committed it, then could not start the workflow or died), or whose workflow ended
(terminated, failed, timed out) without giving the row its final status.

- A pending link without a workflow is started now (same id, same input, the confirmation
  window shortened by the time lost); one whose window has passed is expired (nothing was
  sent). A link whose workflow ended is failed.
- A registration without a workflow is failed and its pending user deleted (the email is free
  again): its id was answered only after the start, so no client knows it and nobody could
  enter the code a late start would send. One whose workflow ended is failed the same way.
Every change is audited (`link.reconciled`, `registration.reconciled`) with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlmodel import col
from temporalio import activity
from temporalio.client import Client

from activities.link_starts import confirmation_seconds, start_link_workflow
from activities.linking import set_link_status
from activities.payment_recovery import WorkflowFate, workflow_fate
from activities.registration import close_pending_registration
from core.db import SessionFactory, transaction
from core.logging import get_logger
from core.settings import Settings
from models.audit import record_audit
from models.base import utcnow
from models.identity.payloads import CloseRegistrationInput
from models.identity.tables import Registration, RegistrationStatus
from models.ledger.tables import LedgerAccount
from models.linking.payloads import SetLinkStatusInput
from models.linking.tables import LinkedAccount, LinkStatus
from models.recovery.payloads import RecoverRowsInput, RecoverRowsResult
from temporal.ids import registration_workflow_id

log = get_logger(__name__)
NEVER_STARTED = "its workflow never started"
_OPEN_REGISTRATIONS = [
    RegistrationStatus.AWAITING_EMAIL_VERIFICATION,
    RegistrationStatus.AWAITING_MFA,
]


def _page(table: Any, open_statuses: list[Any], inp: RecoverRowsInput) -> Any:
    """Non-final rows older than the grace period, oldest first, after the keyset position."""
    query = select(table).where(
        col(table.status).in_([s.value for s in open_statuses]),
        col(table.created_at) < utcnow() - timedelta(seconds=inp.grace_seconds),
    )
    if inp.after_created_at is not None and inp.after_id is not None:
        query = query.where(
            tuple_(col(table.created_at), col(table.id))
            > tuple_(inp.after_created_at, inp.after_id)
        )
    return query.order_by(col(table.created_at), col(table.id)).limit(inp.limit)


def _ended(fate_name: str) -> str:
    return f"its workflow was {fate_name} before it finished"


def _seconds_since(moment: datetime) -> int:
    return int((utcnow() - moment).total_seconds())


class RowRecoveryActivities:
    """Start the missing workflows of links; close links and registrations left unfinished."""

    def __init__(self, sessions: SessionFactory, temporal: Client, settings: Settings) -> None:
        self._sessions = sessions
        self._temporal = temporal
        self._settings = settings

    @activity.defn(name="recovery.recover_rows")
    async def recover_rows(self, inp: RecoverRowsInput) -> RecoverRowsResult:
        """Check one page of non-final links or registrations (see the module doc)."""
        table = LinkedAccount if inp.kind == "link" else Registration
        statuses = [LinkStatus.PENDING_CONFIRMATION] if inp.kind == "link" else _OPEN_REGISTRATIONS
        async with self._sessions() as session:
            rows = list((await session.execute(_page(table, statuses, inp))).scalars())
        result = RecoverRowsResult(checked=len(rows))
        for row in rows:
            activity.heartbeat(str(row.id))
            if inp.kind == "link":
                await self._recover_link(row, result)
            else:
                await self._recover_registration(row, result)
        if len(rows) == inp.limit:
            result.next_created_at, result.next_id = rows[-1].created_at, rows[-1].id
        return result

    async def _recover_link(self, link: LinkedAccount, result: RecoverRowsResult) -> None:
        fate, name = await workflow_fate(self._temporal, link.workflow_id)
        if fate == WorkflowFate.MISSING:
            left = confirmation_seconds(self._settings) - _seconds_since(link.created_at)
            if left <= 0:
                await self._close_link(link, LinkStatus.EXPIRED, f"{NEVER_STARTED}; none was sent")
                result.closed.append(link.id)
                return
            async with self._sessions() as session:
                account = await session.get(LedgerAccount, link.account_id)
            assert account is not None  # accounts are never deleted (RESTRICT)
            await start_link_workflow(
                self._temporal, self._settings, link, account.currency, seconds_left=left
            )
            log.warning("stranded link: workflow started", linked_account_id=str(link.id))
            result.started.append(link.id)
        elif fate == WorkflowFate.ENDED:
            await self._close_link(link, LinkStatus.FAILED, _ended(name))
            result.closed.append(link.id)

    async def _close_link(self, link: LinkedAccount, status: LinkStatus, reason: str) -> None:
        async with transaction(self._sessions) as session:
            changed = await set_link_status(
                session, SetLinkStatusInput(linked_account_id=link.id, status=status)
            )
            if changed:
                await record_audit(
                    session,
                    "link.reconciled",
                    subject=str(link.id),
                    client="reconciler",
                    details={"status": status.value, "reason": reason},
                )
        log.warning("stranded link closed", linked_account_id=str(link.id), reason=reason)

    async def _recover_registration(
        self, registration: Registration, result: RecoverRowsResult
    ) -> None:
        workflow_id = registration_workflow_id(registration.id)
        fate, name = await workflow_fate(self._temporal, workflow_id)
        if fate == WorkflowFate.MISSING:
            reason = f"{NEVER_STARTED}; nobody was told its id"
        elif fate == WorkflowFate.ENDED:
            reason = _ended(name)
        else:
            return
        async with transaction(self._sessions) as session:
            closed = await close_pending_registration(
                session,
                CloseRegistrationInput(
                    registration_id=registration.id, status=RegistrationStatus.FAILED
                ),
            )
            if closed:
                await record_audit(
                    session,
                    "registration.reconciled",
                    subject=str(registration.id),
                    client="reconciler",
                    details={"status": RegistrationStatus.FAILED.value, "reason": reason},
                )
        log.warning("stranded registration closed", registration_id=str(registration.id))
        result.closed.append(registration.id)
