"""DataExportWorkflow: build a customer's data export (GDPR art. 15) into its row.

The archive is written to PostgreSQL by the activity; only the export's id travels here.
Query `status` -> the export's status (`running`, `ready`).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.security.privacy import PrivacyActivities
    from models.security.payloads import DataExportInput
    from temporal.activity_options import db_step
    from temporal.status import publish_status


@workflow.defn(name="DataExportWorkflow")
class DataExportWorkflow:
    """Gathers everything held on a customer into a downloadable archive."""

    @workflow.init
    def __init__(self, inp: DataExportInput) -> None:
        self._status = "running"

    @workflow.run
    async def run(self, inp: DataExportInput) -> str:
        """Build the archive; returns the final status."""
        publish_status(self._status)
        built = await workflow.execute_activity_method(
            PrivacyActivities.build_export, inp, **db_step(inp.activity_timeout_seconds)
        )
        self._status = "ready" if built else "failed"
        publish_status(self._status)
        return self._status

    @workflow.query
    def status(self) -> str:
        """The export's status."""
        return self._status
