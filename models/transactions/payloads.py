"""RecordExternalTransactionWorkflow and CardAuthorizationWorkflow payloads."""

from __future__ import annotations

import uuid
from datetime import datetime

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


class CardAuthorizationInput(BaseModel):
    """CardAuthorizationWorkflow input: the hold to place and until when it may wait."""

    account_id: uuid.UUID
    user_id: uuid.UUID
    authorization_id: str  # the processor's id (hashed into the workflow id, never shown to ops)
    amount: int
    currency: str
    description: str = ""
    merchant: str | None = None
    expires_at: datetime
    activity_timeout_seconds: float | None = None


class CardClearingInput(BaseModel):
    """The `clear` update: capture `amount` (at most the authorised amount); `clearing_id` makes
    a redelivered clearing an idempotent no-op."""

    clearing_id: str
    amount: int


class CardAuthorizationState(BaseModel):
    """What the workflow's `status` query and updates answer."""

    status: str  # authorizing | declined | authorized | cleared | reversed | expired
    reason: str | None = None
    hold_id: uuid.UUID | None = None
    transaction_id: uuid.UUID | None = None
    authorized_amount: int | None = None
    captured_amount: int | None = None
    clearing_id: str | None = None
