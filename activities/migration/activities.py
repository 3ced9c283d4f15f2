"""`MigrationActivities`: what `MigrationWorkflow` calls; each method one transaction on our
side (reads of the monolith happen before it, the freeze flag is written on both sides)."""

from __future__ import annotations

from sqlalchemy import text
from temporalio import activity

from activities.migration import cutover
from activities.migration.batches import apply_changes, backfill_batch
from activities.migration.errors import previous_domain_not_cut_over
from activities.migration.legacy import LegacyDatabase
from activities.migration.verify import verify_domain
from core.db import SessionFactory, transaction
from models.audit import record_audit
from models.gateway.tables import RouteMode
from models.migration.payloads import (
    BatchInput,
    BatchResult,
    ChangesInput,
    ChangesResult,
    CutoverInput,
    FreezeInput,
    RollbackInput,
    RollbackResult,
    StageInput,
    StartedRun,
    StartRunInput,
    VerificationReport,
    VerifyInput,
)
from models.migration.tables import MigrationRun, MigrationStage

DONE_STAGES = (MigrationStage.CUT_OVER.value, MigrationStage.FINALIZED.value)


class MigrationActivities:
    """Migration steps on our database and the monolith's."""

    def __init__(self, sessions: SessionFactory, legacy: LegacyDatabase) -> None:
        self._sessions = sessions
        self._legacy = legacy

    @activity.defn(name="migration.start_run")
    async def start_run(self, inp: StartRunInput) -> StartedRun:
        """Record the run (refused before the previous domain is cut over); CDC starts at the
        newest legacy event before any row is read, so nothing falls between the two."""
        cdc_cursor = await self._legacy.last_event_id()
        total = await self._legacy.count(inp.domain)
        async with transaction(self._sessions) as session:
            previous = inp.domain.previous
            if previous is not None:
                run = await session.get(MigrationRun, previous.value)
                if run is None or run.stage not in DONE_STAGES:
                    raise previous_domain_not_cut_over(inp.domain.value, previous.value)
            await session.execute(
                text(
                    "INSERT INTO migration_runs (domain, stage, workflow_id, backfilled, "
                    "quarantined, applied_events, backfill_cursor, cdc_cursor) VALUES (:d, "
                    "'backfilling', :wf, 0, 0, 0, 0, :cdc) ON CONFLICT (domain) DO UPDATE SET "
                    "stage = 'backfilling', workflow_id = :wf, cdc_cursor = :cdc, "
                    "cutover_at = NULL, finalized_at = NULL, updated_at = now()"
                ),
                {"d": inp.domain.value, "wf": inp.workflow_id, "cdc": cdc_cursor},
            )
            await record_audit(session, "migration.started", subject=f"migration:{inp.domain}")
        return StartedRun(cdc_cursor=cdc_cursor, total_estimate=total)

    @activity.defn(name="migration.backfill_batch")
    async def backfill_batch(self, inp: BatchInput) -> BatchResult:
        """Import one keyset page of legacy rows (idempotent: mapped rows are skipped)."""
        return await backfill_batch(self._sessions, self._legacy, inp)

    @activity.defn(name="migration.apply_changes")
    async def apply_changes(self, inp: ChangesInput) -> ChangesResult:
        """Apply one batch of legacy change events (idempotent per event id)."""
        return await apply_changes(self._sessions, self._legacy, inp)

    @activity.defn(name="migration.set_stage")
    async def set_stage(self, inp: StageInput) -> None:
        """Record the run's stage (for `vortex legacy-migration status` and the next domain)."""
        async with transaction(self._sessions) as session:
            await session.execute(
                text("UPDATE migration_runs SET stage = :s, updated_at = now() WHERE domain = :d"),
                {"s": inp.stage.value, "d": inp.domain.value},
            )

    @activity.defn(name="migration.verify")
    async def verify(self, inp: VerifyInput) -> VerificationReport:
        """Compare both sides of the domain and store the report on the run."""
        report = await verify_domain(self._sessions, self._legacy, inp)
        async with transaction(self._sessions) as session:
            await session.execute(
                text(
                    "UPDATE migration_runs SET verification = CAST(:v AS jsonb), "
                    "updated_at = now() WHERE domain = :d"
                ),
                {"v": report.model_dump_json(), "d": inp.domain.value},
            )
        return report

    @activity.defn(name="migration.freeze")
    async def freeze(self, inp: FreezeInput) -> None:
        """Freeze (or thaw) the domain's legacy writes: the monolith's flag and the gateway's."""
        await self._legacy.set_frozen(inp.domain, inp.frozen)
        async with transaction(self._sessions) as session:
            await cutover.set_frozen_flag(session, inp.domain, inp.frozen)

    @activity.defn(name="migration.cut_over")
    async def cut_over(self, inp: CutoverInput) -> None:
        """Route the domain to the new platform (legacy writes frozen), remembering the modes
        it had for a rollback."""
        async with transaction(self._sessions) as session:
            run = await session.get(MigrationRun, inp.domain.value, with_for_update=True)
            assert run is not None
            if run.stage == MigrationStage.CUT_OVER:
                return
            run.routes_before = await cutover.current_routes(session, inp.domain)
            modes = {p: RouteMode.NEW.value for p in inp.domain.prefixes}
            await cutover.set_routes(session, inp.domain, modes, frozen=True)
            await session.execute(
                text(
                    "UPDATE migration_runs SET stage = 'cut_over', cutover_at = now(), "
                    "updated_at = now() WHERE domain = :d"
                ),
                {"d": inp.domain.value},
            )
            await record_audit(session, "migration.cut_over", subject=f"migration:{inp.domain}")

    @activity.defn(name="migration.roll_back")
    async def roll_back(self, inp: RollbackInput) -> RollbackResult:
        """Route the domain back to the monolith and thaw its writes, unless the new side has
        taken a write of that domain since the cutover (then it is refused)."""
        async with transaction(self._sessions) as session:
            run = await session.get(MigrationRun, inp.domain.value, with_for_update=True)
            if run is None or run.stage != MigrationStage.CUT_OVER or run.cutover_at is None:
                return RollbackResult(rolled_back=False, reason="the domain is not cut over")
            writes = await cutover.new_side_writes(session, inp.domain, run.cutover_at)
            if writes:
                return RollbackResult(
                    rolled_back=False,
                    reason=f"past the point of no return: {writes} writes on the new side",
                )
            before = run.routes_before or {p: RouteMode.LEGACY.value for p in inp.domain.prefixes}
            await cutover.set_routes(session, inp.domain, before, frozen=False)
            run.stage, run.cutover_at = MigrationStage.CATCHING_UP.value, None
            await record_audit(session, "migration.rolled_back", subject=f"migration:{inp.domain}")
        # The monolith's own flag is thawed by the workflow's next step (`freeze`, frozen=False):
        # a crash in between leaves legacy writes refused, never both sides writable.
        return RollbackResult(rolled_back=True)

    @activity.defn(name="migration.finalize")
    async def finalize(self, inp: CutoverInput) -> None:
        """Close the run: rollback is no longer possible."""
        async with transaction(self._sessions) as session:
            await session.execute(
                text(
                    "UPDATE migration_runs SET stage = 'finalized', finalized_at = now(), "
                    "updated_at = now() WHERE domain = :d AND stage = 'cut_over'"
                ),
                {"d": inp.domain.value},
            )
            await record_audit(session, "migration.finalized", subject=f"migration:{inp.domain}")

    def all(self) -> list[object]:
        """Every activity, for the worker."""
        return [
            self.start_run,
            self.backfill_batch,
            self.apply_changes,
            self.set_stage,
            self.verify,
            self.freeze,
            self.cut_over,
            self.roll_back,
            self.finalize,
        ]
