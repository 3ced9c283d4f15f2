"""LinkAccountWorkflow and linking activity payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from models.linking.tables import LinkStatus

# sending -> in_transit -> settled | returned (rejected or cancelled at the rail) | not_sent
# (refused or lost) | unknown (not final before the settlement timeout).
DepositsState = Literal["sending", "in_transit", "settled", "returned", "not_sent", "unknown"]


DEFAULT_SETTLEMENT_TIMEOUT_SECONDS = 7 * 24 * 3600


class LinkAccountInput(BaseModel):
    """LinkAccountWorkflow start arguments (ids and durations only)."""

    linked_account_id: uuid.UUID
    user_id: uuid.UUID
    account_id: uuid.UUID
    currency: str
    external_task_queue: str
    confirmation_seconds: int
    max_attempts: int = 3
    settlement_timeout_seconds: int = DEFAULT_SETTLEMENT_TIMEOUT_SECONDS
    activity_timeout_seconds: float | None = None  # None: the default database step timeout


class LinkState(BaseModel):
    """What the `status` query and the `confirm` update answer, and the workflow's result."""

    linked_account_id: uuid.UUID
    status: LinkStatus
    attempts_left: int
    deposits: DepositsState = "sending"
    expires_at: datetime | None = None
    failure_reason: str | None = None


class ConfirmLinkInput(BaseModel):
    """The `confirm` update: a keyed digest of the two submitted amounts, never the amounts."""

    amounts_digest: str


class MicroDepositsInput(BaseModel):
    """Send (or reconcile) the two micro-deposits of a link."""

    linked_account_id: uuid.UUID
    currency: str


class MicroDepositsSent(BaseModel):
    """The rail's ids of the two accepted micro-deposits."""

    rail_payment_ids: list[str]


class MicroDepositsOutcome(BaseModel):
    """How the micro-deposits ended at the rail; returned ones have been reversed in the ledger."""

    settled: int
    returned: int
    not_sent: int
    reason: str | None = None


class CheckAmountsInput(BaseModel):
    """Compare the digest the API computed from the customer's answer with the derived amounts."""

    linked_account_id: uuid.UUID
    amounts_digest: str


class AmountsCheck(BaseModel):
    """Whether the submitted amounts were right."""

    matches: bool


class SetLinkStatusInput(BaseModel):
    """Write a new status to the `linked_accounts` read model."""

    linked_account_id: uuid.UUID
    status: LinkStatus
