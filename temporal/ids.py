"""Workflow-id builders: business ids only, never personal data."""

from __future__ import annotations

import hashlib
import uuid


def registration_workflow_id(registration_id: uuid.UUID) -> str:
    """`registration-<registration uuid>`."""
    return f"registration-{registration_id}"


def account_closure_workflow_id(account_id: uuid.UUID) -> str:
    """`account-closure-<account uuid>`: one closure per account."""
    return f"account-closure-{account_id}"


def transfer_workflow_id(payment_id: uuid.UUID) -> str:
    """`transfer-<payment uuid>`: the payment row maps the client's Idempotency-Key to it."""
    return f"transfer-{payment_id}"


def link_account_workflow_id(linked_account_id: uuid.UUID) -> str:
    """`link-<linked account uuid>`: one verification per link."""
    return f"link-{linked_account_id}"


def external_transaction_workflow_id(account_id: uuid.UUID, external_id: str) -> str:
    """`external-txn-<account uuid>-<sha256(external id)[:32]>`: the source's id is hashed
    because it is not ours (it may carry card or terminal data)."""
    digest = hashlib.sha256(external_id.encode()).hexdigest()[:32]
    return f"external-txn-{account_id}-{digest}"


def external_payment_workflow_id(payment_id: uuid.UUID) -> str:
    """`payment-<payment uuid>`: an external payment (the row maps the Idempotency-Key to it)."""
    return f"payment-{payment_id}"


def card_authorization_workflow_id(account_id: uuid.UUID, authorization_id: str) -> str:
    """`card-auth-<account uuid>-<sha256(authorization id)[:32]>`: the processor's id is hashed
    (it may carry card or terminal data)."""
    digest = hashlib.sha256(authorization_id.encode()).hexdigest()[:32]
    return f"card-auth-{account_id}-{digest}"


def notification_workflow_id(event_id: int, user_id: uuid.UUID | None, prefix: str = "") -> str:
    """`notification-<outbox event id>-<user uuid | global>`: one delivery per event and
    recipient, however often the event is redelivered. `prefix` is for tests (their outbox
    ids restart with every test; a real database's never do)."""
    return f"{prefix}notification-{event_id}-{user_id or 'global'}"


def incident_workflow_id(incident_id: uuid.UUID) -> str:
    """`incident-<incident uuid>`."""
    return f"incident-{incident_id}"


def security_audit_workflow_id(report_id: uuid.UUID) -> str:
    """`security-audit-<report uuid>`."""
    return f"security-audit-{report_id}"


def data_export_workflow_id(export_id: uuid.UUID) -> str:
    """`data-export-<export uuid>`."""
    return f"data-export-{export_id}"


def migration_workflow_id(domain: str) -> str:
    """One migration workflow per domain (`migration-users`, `migration-accounts`, ...)."""
    return f"migration-{domain}"


def monthly_report_workflow_id(user_id: uuid.UUID, month: str) -> str:
    """`monthly-report-<user uuid>-<YYYY-MM>`: one report per customer and month, whichever run
    (scheduled, overlapping, rerun, backfill) starts it."""
    return f"monthly-report-{user_id}-{month}"


def monthly_reports_workflow_id(month: str) -> str:
    """`monthly-reports-<YYYY-MM>`: a backfill started from the CLI (Schedule runs are named by
    the Schedule: `<schedule id>-<scheduled time>`)."""
    return f"monthly-reports-{month}"


def assistant_workflow_id(conversation_id: uuid.UUID) -> str:
    """One AssistantWorkflow per conversation."""
    return f"assistant-{conversation_id}"
