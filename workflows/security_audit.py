"""SecurityAuditWorkflow: run the audit's checks and record the verdict.

    audit hash chain -> ledger invariants -> configuration -> verdict (passed / failed)

Each check writes its section of the `security_reports` row; only pass/fail flags travel here.
Query `status` -> SecurityAuditState.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.security.audit import SecurityAuditActivities
    from models.security.payloads import (
        AuditFinishInput,
        AuditStepInput,
        SecurityAuditInput,
        SecurityAuditState,
    )
    from temporal.activity_options import db_step
    from temporal.status import publish_status


@workflow.defn(name="SecurityAuditWorkflow")
class SecurityAuditWorkflow:
    """Checks the audit chain, the ledger and the configuration; stores a report."""

    @workflow.init
    def __init__(self, inp: SecurityAuditInput) -> None:
        self._state = SecurityAuditState(report_id=inp.report_id)

    @workflow.run
    async def run(self, inp: SecurityAuditInput) -> SecurityAuditState:
        """Run every check, then record the verdict."""
        publish_status("running")
        step = AuditStepInput(report_id=inp.report_id)
        options = db_step(inp.activity_timeout_seconds)
        for name, check in (
            ("audit_chain", SecurityAuditActivities.audit_chain),
            ("ledger", SecurityAuditActivities.audit_ledger),
            ("configuration", SecurityAuditActivities.audit_config),
        ):
            self._state.checks[name] = await workflow.execute_activity_method(
                check, step, **options
            )
        passed = all(self._state.checks.values())
        await workflow.execute_activity_method(
            SecurityAuditActivities.audit_finish,
            AuditFinishInput(report_id=inp.report_id, passed=passed),
            **options,
        )
        self._state.finished = True
        publish_status("passed" if passed else "failed")
        return self._state

    @workflow.query
    def status(self) -> SecurityAuditState:
        """Which checks ran and passed."""
        return self._state
