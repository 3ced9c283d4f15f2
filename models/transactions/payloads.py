"""RecordExternalTransactionWorkflow payloads."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from models.ledger.payloads import ExternalEntryInput, ExternalTransactionResult


class ExternalTransactionInput(BaseModel):
    """Workflow input: the ledger request and a fingerprint of the API body that produced it.

    The fingerprint lets a caller that attached to an already running workflow (same
    external id) tell whether it asked for the same thing.
    """

    request: ExternalEntryInput
    request_hash: str
    activity_timeout_seconds: float | None = None  # None: the default database step timeout


class ExternalTransactionState(BaseModel):
    """What the workflow's `status` query answers."""

    status: str  # recording | recorded | rejected
    transaction_id: uuid.UUID | None = None
    reason: str | None = None


class RecordedExternalTransaction(BaseModel):
    """Workflow result: the ledger's result and the fingerprint of the request it recorded."""

    result: ExternalTransactionResult
    request_hash: str
