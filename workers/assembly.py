"""Build the workers: ledger/DB work on the main queue, slow external calls on their own queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from activities.ai.activities import AiActivities
from activities.ai.llm import LlmClient
from activities.ledger.activities import LedgerActivities
from activities.linking import LinkingActivities
from activities.migration.activities import MigrationActivities
from activities.migration.legacy import LegacyDatabase
from activities.notifications.activities import NotificationActivities
from activities.payment_recovery import PaymentRecoveryActivities
from activities.payments import PaymentActivities
from activities.providers.rail import HttpPaymentRail, PaymentRail
from activities.rail_payments import RailActivities
from activities.registration import RegistrationActivities
from activities.reports.activities import ReportActivities
from activities.row_recovery import RowRecoveryActivities
from activities.security.activities import SecurityActivities
from activities.security.audit import SecurityAuditActivities
from activities.security.privacy import PrivacyActivities
from core.breakers import configure_breakers
from core.crypto import crypto_for
from core.db import SessionFactory, read_sessions_for
from core.email import EmailBackend
from core.settings import Settings
from temporal.breakers import BreakerInterceptor
from temporal.sandbox_runner import CompiledOnceSandboxedRunner
from workflows.account_closure import AccountClosureWorkflow
from workflows.assistant import AssistantWorkflow
from workflows.card_authorization import CardAuthorizationWorkflow
from workflows.categorizer_training import CategorizerTrainingWorkflow
from workflows.data_export import DataExportWorkflow
from workflows.external_payment import ExternalPaymentWorkflow
from workflows.external_transaction import RecordExternalTransactionWorkflow
from workflows.hold_expiry import ExpireHoldsWorkflow
from workflows.incident import IncidentWorkflow
from workflows.link_account import LinkAccountWorkflow
from workflows.migration import MigrationWorkflow
from workflows.monthly_reports import MonthlyReportsWorkflow, MonthlyReportWorkflow
from workflows.notification import NotificationWorkflow
from workflows.reconcile_rows import ReconcileRowsWorkflow
from workflows.reconcile_stranded import ReconcileStrandedWorkflow
from workflows.registration import RegistrationWorkflow
from workflows.security_audit import SecurityAuditWorkflow
from workflows.transfer import TransferWorkflow

WORKFLOWS: Sequence[type] = (
    RegistrationWorkflow,
    AccountClosureWorkflow,
    TransferWorkflow,
    RecordExternalTransactionWorkflow,
    CardAuthorizationWorkflow,
    ExpireHoldsWorkflow,
    LinkAccountWorkflow,
    ExternalPaymentWorkflow,
    ReconcileStrandedWorkflow,
    NotificationWorkflow,
    IncidentWorkflow,
    SecurityAuditWorkflow,
    DataExportWorkflow,
    ReconcileRowsWorkflow,
    MigrationWorkflow,
    MonthlyReportsWorkflow,
    MonthlyReportWorkflow,
    AssistantWorkflow,
    CategorizerTrainingWorkflow,
)
# Workflow modules are imported once, not again for every run: ours keep no module state. The
# price: modules pass through unproxied, so the sandbox refuses I/O builtins (open, input) at run
# time but not clock or random reads through a module; review and replay tests guard those
# (decision 83). Its entry code is compiled once (temporal/sandbox_runner.py).
WORKFLOW_RUNNER = CompiledOnceSandboxedRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)
# On SIGTERM running activities get this long to finish before they are cancelled (and retried).
GRACEFUL_SHUTDOWN = timedelta(seconds=20)


@dataclass
class WorkerDeps:
    """What activities need from the outside world."""

    settings: Settings
    sessions: SessionFactory
    email: EmailBackend
    rail: PaymentRail | None = None  # None: HttpPaymentRail(settings.rail_url), built once
    reads: SessionFactory | None = None  # None: autocommit sessions on the same engine

    def __post_init__(self) -> None:
        if self.reads is None:
            self.reads = read_sessions_for(self.sessions)
        if self.rail is None:
            self.rail = HttpPaymentRail(self.settings.rail_url)


def _registration_activities(deps: WorkerDeps) -> RegistrationActivities:
    return RegistrationActivities(
        deps.sessions,
        crypto_for(deps.settings.secret_key.get_secret_value()),
        deps.email,
        default_currency=deps.settings.default_account_currency,
    )


def _linking_activities(deps: WorkerDeps) -> LinkingActivities:
    assert deps.rail is not None
    return LinkingActivities(
        deps.sessions, crypto_for(deps.settings.secret_key.get_secret_value()), deps.rail
    )


def main_activities(deps: WorkerDeps, client: Client | None = None) -> list[Any]:
    """Activities that only touch PostgreSQL/Redis (and, given a client, Temporal itself: the
    stranded-payment reconciler starts workflows)."""
    reg = _registration_activities(deps)
    ledger = LedgerActivities(deps.sessions)
    st = deps.settings
    payments = PaymentActivities(
        deps.sessions,
        reads=deps.reads,
        max_single_payment_minor=st.max_single_payment_minor,
        max_payments_per_hour=st.max_payments_per_hour,
        review_threshold_minor=st.payment_review_threshold_minor,
        review_score=st.risk_review_score,
        lookback_days=st.risk_lookback_days,
        recent_hours=st.risk_recent_change_hours,
    )
    notices = NotificationActivities(deps.sessions, deps.email)
    return [
        reg.check_email_code,
        reg.activate_user,
        reg.close_registration,
        *ledger.all(),
        payments.set_status,
        payments.assess_risk,
        payments.post_transfer,
        *_linking_activities(deps).main(),
        notices.record,
        notices.push,
        notices.fan_out,
        notices.announcement_emails,
        *SecurityActivities(deps.sessions, deps.email).main(),
        *SecurityAuditActivities(deps.sessions, st).all(),
        PrivacyActivities(deps.sessions).build_export,
        *(PaymentRecoveryActivities(deps.sessions, client, st).all() if client else []),
        *([RowRecoveryActivities(deps.sessions, client, st).recover_rows] if client else []),
        *MigrationActivities(deps.sessions, LegacyDatabase(st.effective_legacy_database_url)).all(),
        *ReportActivities(deps.sessions).all(),
        *AiActivities(deps.sessions, st, client=client).main(),
    ]


def external_activities(deps: WorkerDeps) -> list[Any]:
    """Activities that call slow external systems (email, payment rail, LLM)."""
    reg = _registration_activities(deps)
    assert deps.rail is not None
    return [
        reg.send_verification_code,
        NotificationActivities(deps.sessions, deps.email).send_email,
        SecurityActivities(deps.sessions, deps.email).email_escalation,
        *_linking_activities(deps).external(),
        *RailActivities(deps.rail).all(),
        ReportActivities(deps.sessions, LlmClient.from_settings(deps.settings)).narrate,
        *AiActivities(deps.sessions, deps.settings).external(),
    ]


def build_workers(
    client: Client,
    deps: WorkerDeps,
    *,
    task_queue: str | None = None,
    external_task_queue: str | None = None,
) -> list[Worker]:
    """The main worker (workflows + DB activities) and the external-calls worker."""
    settings = deps.settings
    configure_breakers(settings)
    return [
        Worker(
            client,
            task_queue=task_queue or settings.task_queue,
            workflows=list(WORKFLOWS),
            activities=main_activities(deps, client),
            workflow_runner=WORKFLOW_RUNNER,
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            interceptors=[BreakerInterceptor()],
        ),
        Worker(
            client,
            task_queue=external_task_queue or settings.external_task_queue,
            activities=external_activities(deps),
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            interceptors=[BreakerInterceptor()],
        ),
    ]
