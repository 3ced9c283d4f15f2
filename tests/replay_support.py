"""Recorded workflow histories, named one by one: a replay test opens each file it names, so a
missing history fails the run instead of shrinking a glob to nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.worker import Plugin, Replayer

from tests.conftest import TEST_CONVERTER
from workers.assembly import WORKFLOW_RUNNER

HISTORIES = Path(__file__).parent / "histories"

# Every recorded history, by the workflow it replays against.
RECORDED: dict[str, tuple[str, ...]] = {
    "AssistantWorkflow": ("assistant_continued_as_new",),
    "CategorizerTrainingWorkflow": ("categorizer_training_activated",),
    "CardAuthorizationWorkflow": ("card_authorization_cleared",),
    "ExternalPaymentWorkflow": ("external_payment_completed", "external_payment_retried"),
    "IncidentWorkflow": ("incident_escalated_resolved",),
    "LinkAccountWorkflow": ("link_account_linked",),
    "MigrationWorkflow": ("migration_accounts_cut_over",),
    "MonthlyReportWorkflow": ("monthly_report_ready",),
    "MonthlyReportsWorkflow": ("monthly_reports_continued",),
    "NotificationWorkflow": ("notification_quiet_hours",),
    "RegistrationWorkflow": ("registration_completed",),
    "TransferWorkflow": (
        "transfer_cancelled",
        "transfer_cancelled_regular_activities",
        "transfer_completed",
        "transfer_completed_regular_activities",
        "transfer_scheduled",
    ),
}


def recorded(workflow_name: str) -> list[Path]:
    """The history files recorded for a workflow (each must exist)."""
    return [HISTORIES / f"{name}.json" for name in RECORDED[workflow_name]]


async def replay(path: Path, workflow: type[Any]) -> None:
    """Replay one recorded history against the current workflow code."""
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    await replay_history(history, workflow)


async def replay_history(
    history: WorkflowHistory, workflow: type[Any], plugins: Sequence[Plugin] = ()
) -> None:
    """Replay a history (recorded or just fetched) against the current workflow code, with the
    workers' `plugins` if given (tracing's)."""
    # The workers' own runner: replay proves it runs recorded histories unchanged.
    replayer = Replayer(
        workflows=[workflow],
        data_converter=TEST_CONVERTER,
        workflow_runner=WORKFLOW_RUNNER,
        plugins=plugins,
    )
    await replayer.replay_workflow(history)
