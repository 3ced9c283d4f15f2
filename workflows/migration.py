"""MigrationWorkflow: one domain of the strangler-fig migration from the legacy monolith.

Backfill (throttled keyset batches, continuing as new), then change-data-capture catch-up from
the monolith's `migration_events` until an operator asks for the cutover: freeze legacy
writes, drain the last changes, verify, then flip the routes (or thaw and refuse when the
verification fails). Rollback is possible until the new side takes a write of that domain, or
until `finalize`. Pause, resume and abort are signals; cutover, rollback and finalize are
updates (the caller gets the answer); `progress` answers counts, rate and ETA.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.migration.activities import MigrationActivities
    from models.migration.payloads import (
        BatchInput,
        ChangesInput,
        CutoverInput,
        CutoverResult,
        FreezeInput,
        MigrationInput,
        MigrationProgress,
        RollbackInput,
        RollbackResult,
        StageInput,
        StartRunInput,
        VerificationReport,
        VerifyInput,
    )
    from models.migration.tables import MigrationStage
    from temporal.activity_options import db_step
    from temporal.status import publish_migration_status

NOT_ALLOWED = "MigrationStepNotAllowed"


async def _wait(condition: Callable[[], bool], within: timedelta) -> bool:
    """Wait for `condition` at most `within`; False when the time ran out."""
    try:
        await workflow.wait_condition(condition, timeout=within)
    except TimeoutError:
        return False
    return True


@workflow.defn(name="MigrationWorkflow")
class MigrationWorkflow:
    """Backfill, catch up, verify and cut over one domain; rollback until the point of no return."""

    @workflow.init
    def __init__(self, inp: MigrationInput) -> None:
        self._s = inp.model_copy()
        self._abort = False
        self._cutover_wanted = False
        self._cutover_result: CutoverResult | None = None
        self._rollback_wanted = False
        self._rollback_result: RollbackResult | None = None
        self._finalize_wanted = False
        self._verification: VerificationReport | None = None
        self._batches = 0

    @workflow.run
    async def run(self, inp: MigrationInput) -> MigrationProgress:
        """Run the domain's migration to its cutover and finalisation (or abort)."""
        s = self._s
        if not s.started:
            started = await workflow.execute_activity_method(
                MigrationActivities.start_run,
                StartRunInput(domain=s.domain, workflow_id=workflow.info().workflow_id),
                **db_step(s.activity_timeout_seconds),
            )
            s.cdc_cursor, s.total_estimate = started.cdc_cursor, started.total_estimate
            s.started, s.started_at = True, workflow.now()
        self._publish()
        while s.stage == MigrationStage.BACKFILLING:
            if await self._held():
                return await self._aborted()
            await self._backfill_batch()
            if self._should_continue_as_new():
                self._continue_as_new()
        while not self._finalized():
            if await self._held():
                return await self._aborted()
            if s.stage == MigrationStage.CATCHING_UP:
                await self._catch_up_step()
            else:
                await self._cut_over_step()
            if not self._finalized() and self._should_continue_as_new():
                self._continue_as_new()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.progress()

    # -- backfill and catch-up -------------------------------------------------------------

    async def _backfill_batch(self) -> None:
        s = self._s
        batch = await workflow.execute_activity_method(
            MigrationActivities.backfill_batch,
            BatchInput(domain=s.domain, after_id=s.backfill_cursor, limit=s.batch_size),
            **db_step(s.activity_timeout_seconds),
        )
        self._batches += 1
        s.backfill_cursor = batch.last_id
        s.backfilled, s.quarantined = batch.migrated_total, batch.quarantined_total
        if batch.done:
            await self._set_stage(MigrationStage.CATCHING_UP)
        else:
            self._publish()
            await workflow.sleep(timedelta(seconds=batch.read / s.rows_per_second))

    async def _changes(self) -> bool:
        """Apply one batch of change events; True when more are waiting."""
        s = self._s
        changes = await workflow.execute_activity_method(
            MigrationActivities.apply_changes,
            ChangesInput(domain=s.domain, after_event=s.cdc_cursor, limit=s.batch_size),
            **db_step(s.activity_timeout_seconds),
        )
        self._batches += 1
        s.cdc_cursor = changes.last_event
        s.backfilled, s.quarantined = changes.migrated_total, changes.quarantined_total
        s.applied_events = changes.applied_total
        return changes.more

    async def _catch_up_step(self) -> None:
        more = await self._changes()
        if self._cutover_wanted:
            await self._cut_over()
        elif not more:
            await _wait(
                lambda: self._cutover_wanted or self._abort or self._s.paused,
                timedelta(seconds=self._s.cdc_poll_seconds),
            )

    # -- cutover, rollback, finalize -------------------------------------------------------

    async def _cut_over(self) -> None:
        s = self._s
        await self._freeze(True)
        while await self._changes():
            pass  # the freeze waited for in-flight legacy writes: this drains the last events
        report = await self._verify()
        if not report.ok:
            await self._freeze(False)
            failed = ", ".join(c.name for c in report.checks if c.outcome == "failed")
            self._answer_cutover(
                CutoverResult(
                    cut_over=False, reason=f"verification failed: {failed}", verification=report
                )
            )
            return
        await workflow.execute_activity_method(
            MigrationActivities.cut_over,
            CutoverInput(domain=s.domain),
            **db_step(s.activity_timeout_seconds),
        )
        s.stage = MigrationStage.CUT_OVER
        self._publish()
        self._answer_cutover(CutoverResult(cut_over=True, verification=report))

    def _answer_cutover(self, result: CutoverResult) -> None:
        self._cutover_wanted, self._cutover_result = False, result

    async def _cut_over_step(self) -> None:
        s = self._s
        # wakes hourly, so a long-lived cut-over run still continues as new when suggested
        await _wait(lambda: self._rollback_wanted or self._finalize_wanted, timedelta(hours=1))
        if self._rollback_wanted:
            result = await workflow.execute_activity_method(
                MigrationActivities.roll_back,
                RollbackInput(domain=s.domain),
                **db_step(s.activity_timeout_seconds),
            )
            if result.rolled_back:
                await self._freeze(False)
                s.stage = MigrationStage.CATCHING_UP
                self._publish()
            self._rollback_wanted, self._rollback_result = False, result
        elif self._finalize_wanted:
            await workflow.execute_activity_method(
                MigrationActivities.finalize,
                CutoverInput(domain=s.domain),
                **db_step(s.activity_timeout_seconds),
            )
            s.stage = MigrationStage.FINALIZED
            self._publish()

    async def _freeze(self, frozen: bool) -> None:
        await workflow.execute_activity_method(
            MigrationActivities.freeze,
            FreezeInput(domain=self._s.domain, frozen=frozen),
            **db_step(self._s.activity_timeout_seconds),
        )

    async def _verify(self) -> VerificationReport:
        s = self._s
        self._verification = await workflow.execute_activity_method(
            MigrationActivities.verify,
            VerifyInput(
                domain=s.domain,
                sample_size=s.sample_size,
                shadow_diff_threshold=s.shadow_diff_threshold,
            ),
            **db_step(max(s.activity_timeout_seconds, 120.0)),
        )
        return self._verification

    # -- pause, abort, continue-as-new -----------------------------------------------------

    async def _held(self) -> bool:
        """Wait while paused; True when an abort was asked."""
        if self._s.paused:
            self._publish()
            await workflow.wait_condition(lambda: not self._s.paused or self._abort)
            self._publish()
        return self._abort

    async def _aborted(self) -> MigrationProgress:
        await self._set_stage(MigrationStage.ABORTED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.progress()

    async def _set_stage(self, stage: MigrationStage) -> None:
        self._s.stage = stage
        await workflow.execute_activity_method(
            MigrationActivities.set_stage,
            StageInput(domain=self._s.domain, stage=stage),
            **db_step(self._s.activity_timeout_seconds),
        )
        self._publish()

    def _finalized(self) -> bool:
        return self._s.stage == MigrationStage.FINALIZED

    def _should_continue_as_new(self) -> bool:
        # An abort lives only in this run (it is not in the carried state): the loop must see
        # it before any continue-as-new, or the next run would never stop.
        busy = self._abort or self._cutover_wanted or self._rollback_wanted or self._finalize_wanted
        long = self._batches >= self._s.batches_per_run
        return not busy and (long or workflow.info().is_continue_as_new_suggested())

    def _continue_as_new(self) -> None:
        workflow.continue_as_new(self._s)

    def _publish(self) -> None:
        s = self._s
        status = f"migration_{s.stage.value}" + ("_paused" if s.paused else "")
        publish_migration_status(status, domain=s.domain.value, rows=s.backfilled)

    # -- signals, updates, queries ---------------------------------------------------------

    @workflow.signal
    def pause(self) -> None:
        """Stop after the current batch until `resume`."""
        self._s.paused = True

    @workflow.signal
    def resume(self) -> None:
        """Go on after a `pause`."""
        self._s.paused = False

    @workflow.signal
    def abort(self) -> None:
        """Stop the migration before its cutover (what was imported stays, mapped)."""
        if self._s.stage in (MigrationStage.BACKFILLING, MigrationStage.CATCHING_UP):
            self._abort = True

    @workflow.update
    async def cutover(self) -> CutoverResult:
        """Freeze legacy writes, drain, verify and flip the routes (refused if verification
        fails)."""
        self._cutover_wanted, self._cutover_result = True, None
        await workflow.wait_condition(lambda: self._cutover_result is not None)
        assert self._cutover_result is not None
        return self._cutover_result

    @cutover.validator
    def _validate_cutover(self) -> None:
        if self._s.stage != MigrationStage.CATCHING_UP or self._s.paused or self._cutover_wanted:
            raise ApplicationError(
                f"a cutover needs the catching-up stage, not paused (now {self._s.stage})",
                type=NOT_ALLOWED,
            )

    @workflow.update
    async def rollback(self) -> RollbackResult:
        """Route the domain back to the monolith (refused past the point of no return)."""
        self._rollback_wanted, self._rollback_result = True, None
        await workflow.wait_condition(lambda: self._rollback_result is not None)
        assert self._rollback_result is not None
        return self._rollback_result

    @rollback.validator
    def _validate_rollback(self) -> None:
        if self._s.stage != MigrationStage.CUT_OVER or self._rollback_wanted:
            raise ApplicationError(
                f"only a cut-over domain can be rolled back (now {self._s.stage})", type=NOT_ALLOWED
            )

    @workflow.update
    async def finalize(self) -> MigrationProgress:
        """Pass the point of no return on purpose: the run ends, rollback is gone."""
        self._finalize_wanted = True
        await workflow.wait_condition(lambda: self._s.stage == MigrationStage.FINALIZED)
        return self.progress()

    @finalize.validator
    def _validate_finalize(self) -> None:
        if self._s.stage != MigrationStage.CUT_OVER:
            raise ApplicationError(
                f"only a cut-over domain can be finalized (now {self._s.stage})", type=NOT_ALLOWED
            )

    @workflow.query
    def progress(self) -> MigrationProgress:
        """Counts, rate (rows per second since the start) and ETA of the backfill."""
        s = self._s
        done = s.backfilled + s.quarantined
        elapsed = (workflow.now() - s.started_at).total_seconds() if s.started_at else 0.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta: float | None = None
        if s.stage == MigrationStage.BACKFILLING and rate > 0:
            eta = max(s.total_estimate - done, 0) / rate
        elif s.stage != MigrationStage.BACKFILLING:
            eta = 0.0
        return MigrationProgress(
            domain=s.domain,
            stage=s.stage,
            paused=s.paused,
            backfill_cursor=s.backfill_cursor,
            cdc_cursor=s.cdc_cursor,
            backfilled=s.backfilled,
            quarantined=s.quarantined,
            applied_events=s.applied_events,
            total_estimate=s.total_estimate,
            rows_per_second=round(rate, 2),
            eta_seconds=round(eta, 1) if eta is not None else None,
            last_verification=self._verification,
        )

    @workflow.query
    def status(self) -> MigrationProgress:
        """The same as `progress` (every workflow answers `status`)."""
        return self.progress()
