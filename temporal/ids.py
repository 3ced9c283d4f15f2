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
