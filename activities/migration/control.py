"""Driving the per-domain `MigrationWorkflow`s: what `vortex legacy-migration` and the staff
routes (`/api/staff/migrations`) both do, so the two cannot drift apart. Start in dependency
order, read each domain's status, pause, resume or abort by signal, and cut over, roll back or
finalize by update; a refusal (a domain out of order, a workflow not running, a validator or a
failed verification) is a `MigrationRefused` with the reason."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from core.db import SessionFactory
from core.settings import Settings
from models.migration.payloads import MigrationInput, MigrationProgress, VerificationReport
from models.migration.tables import MigrationDomain, MigrationRun, MigrationStage
from temporal.ids import migration_workflow_id
from workflows.migration import MigrationWorkflow

# How long `status` waits for a worker to answer the progress query before it shows the stored
# row alone (a query to a workflow no worker polls for waits as long as the call allows).
PROGRESS_QUERY_TIMEOUT = timedelta(seconds=5)


class MigrationAction(StrEnum):
    """What ops can do to a domain's migration."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    CUTOVER = "cutover"
    ROLLBACK = "rollback"
    FINALIZE = "finalize"


class MigrationRefused(Exception):
    """The action was not taken; the message says why (and `verification`, for a cutover
    refused by its checks)."""

    def __init__(self, reason: str, verification: VerificationReport | None = None) -> None:
        super().__init__(reason)
        self.verification = verification


@dataclass(frozen=True)
class DomainStatus:
    """One domain: its stored run (None: never started) and, while its workflow runs, the
    live progress (None once the run ended)."""

    domain: MigrationDomain
    run: MigrationRun | None
    progress: MigrationProgress | None
    # The workflow runs but no worker answered the progress query in time (all workers down,
    # or the one it was cached on just died): the stored row is all there is to show.
    unanswered: bool = False


@dataclass(frozen=True)
class ActionOutcome:
    """What an action did, in a sentence, with the verification a cutover ran."""

    said: str
    workflow_id: str
    verification: VerificationReport | None = None


def migration_input(settings: Settings, domain: MigrationDomain) -> MigrationInput:
    """A domain's workflow input from the settings."""
    return MigrationInput(
        domain=domain,
        batch_size=settings.migration_batch_size,
        rows_per_second=settings.migration_rows_per_second,
        cdc_poll_seconds=settings.migration_cdc_poll_seconds,
        batches_per_run=settings.migration_batches_per_run,
        sample_size=settings.migration_sample_size,
        shadow_diff_threshold=settings.migration_shadow_diff_threshold,
    )


async def stored_runs(sessions: SessionFactory) -> dict[str, MigrationRun]:
    """Every domain's stored run, by domain."""
    async with sessions() as session:
        rows = (await session.execute(select(MigrationRun))).scalars().all()
    return {r.domain: r for r in rows}


async def domain_statuses(
    client: Client, sessions: SessionFactory, only: MigrationDomain | None = None
) -> list[DomainStatus]:
    """The status of `only`, or of every domain in migration order."""
    runs = await stored_runs(sessions)
    found = []
    for domain in [only] if only else list(MigrationDomain):
        run = runs.get(domain.value)
        progress, unanswered = None, False
        if run is not None:
            try:
                handle = client.get_workflow_handle(run.workflow_id)
                # A closed run would answer the query too (by replay); its row says enough.
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    # The client may retry a query whose deadline passed, so the whole wait is
                    # bounded here as well, not by the per-call `rpc_timeout` alone.
                    async with asyncio.timeout(PROGRESS_QUERY_TIMEOUT.total_seconds()):
                        progress = await handle.query(
                            MigrationWorkflow.progress, rpc_timeout=PROGRESS_QUERY_TIMEOUT
                        )
            except TimeoutError:
                unanswered = True
            except RPCError as exc:
                if exc.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                    unanswered = True
                elif exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    raise  # Temporal unreachable: the caller says so
        found.append(DomainStatus(domain, run, progress, unanswered))
    return found


async def start_migration(
    client: Client, sessions: SessionFactory, settings: Settings, domain: MigrationDomain
) -> ActionOutcome:
    """Start a domain's workflow (a running one is kept); refused unless the previous domain
    is cut over."""
    previous = domain.previous
    if previous is not None:
        run = (await stored_runs(sessions)).get(previous.value)
        if run is None or run.stage not in (MigrationStage.CUT_OVER, MigrationStage.FINALIZED):
            raise MigrationRefused(f"{previous} must be cut over before {domain} starts")
    handle = await client.start_workflow(
        MigrationWorkflow.run,
        migration_input(settings, domain),
        id=migration_workflow_id(domain.value),
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Legacy migration: {domain}",
    )
    return ActionOutcome("started", handle.id)


async def act(
    client: Client,
    sessions: SessionFactory,
    settings: Settings,
    domain: MigrationDomain,
    action: MigrationAction,
) -> ActionOutcome:
    """Take `action` on `domain`'s migration; raises `MigrationRefused` when it is not taken."""
    if action is MigrationAction.START:
        return await start_migration(client, sessions, settings, domain)
    handle = client.get_workflow_handle(migration_workflow_id(domain.value))
    try:
        if action in (MigrationAction.PAUSE, MigrationAction.RESUME, MigrationAction.ABORT):
            signal = {
                MigrationAction.PAUSE: MigrationWorkflow.pause,
                MigrationAction.RESUME: MigrationWorkflow.resume,
                MigrationAction.ABORT: MigrationWorkflow.abort,
            }[action]
            await handle.signal(signal)
            return ActionOutcome(f"{action} sent", handle.id)
        if action is MigrationAction.CUTOVER:
            result = await handle.execute_update(MigrationWorkflow.cutover)
            if not result.cut_over:
                raise MigrationRefused(result.reason or "refused", result.verification)
            return ActionOutcome("cut over", handle.id, result.verification)
        if action is MigrationAction.ROLLBACK:
            rolled = await handle.execute_update(MigrationWorkflow.rollback)
            if not rolled.rolled_back:
                raise MigrationRefused(rolled.reason or "refused")
            return ActionOutcome("rolled back", handle.id)
        await handle.execute_update(MigrationWorkflow.finalize)
        return ActionOutcome("finalized", handle.id)
    except WorkflowUpdateFailedError as exc:
        raise MigrationRefused(str(exc.cause)) from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unreachable
        raise MigrationRefused(f"the {domain} migration is not running") from exc
