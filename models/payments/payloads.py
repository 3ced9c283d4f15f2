"""TransferWorkflow, ExternalPaymentWorkflow and payment activity payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.payments.tables import PaymentStatus


class TransferInput(BaseModel):
    """TransferWorkflow start arguments."""

    payment_id: uuid.UUID
    user_id: uuid.UUID
    from_account_id: uuid.UUID
    to_account_id: uuid.UUID
    amount: int
    currency: str
    description: str = ""
    execute_at: datetime | None = None
    activity_timeout_seconds: float = 30.0


class PaymentState(BaseModel):
    """What a payment workflow's `status` query answers."""

    payment_id: uuid.UUID
    status: PaymentStatus
    failure_reason: str | None = None
    execute_at: datetime | None = None
    rail_payment_id: str | None = None  # external payments, once the rail accepted them
    approval_expires_at: datetime | None = None  # external payments awaiting approval
    completed_at: datetime | None = None  # as written to the payment row, once known


class TransferPosted(BaseModel):
    """post_transfer's result: the entry, and when the payment row was marked completed."""

    entry_id: uuid.UUID
    completed_at: datetime | None = None  # None: the row was already terminal (a replay)


class SetPaymentStatusInput(BaseModel):
    """Write a new status (and optional details) to the payment read model."""

    payment_id: uuid.UUID
    status: PaymentStatus
    failure_reason: str | None = None
    rail_payment_id: str | None = None


class RiskInput(BaseModel):
    """A payment to assess before money moves."""

    payment_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str


class RiskDecision(BaseModel):
    """`allow`, `review` (needs the customer's TOTP approval) or `deny`, with a reason."""

    decision: str
    reason: str | None = None
    score: int | None = None  # the risk engine's points (activities/security/risk.py)


RailStatus = Literal["pending", "settled", "rejected", "cancelled"]


RAIL_OUTCOMES: frozenset[str] = frozenset({"settled", "rejected", "cancelled"})


class ExternalPaymentInput(BaseModel):
    """ExternalPaymentWorkflow start arguments: ids, amount, the beneficiary's bank details
    (needed by the rail; nothing secret) and the durations/limits, from settings."""

    payment_id: uuid.UUID
    user_id: uuid.UUID
    from_account_id: uuid.UUID
    debtor_account: str  # our account number, as the rail's debtor reference
    amount: int
    currency: str
    description: str = ""
    creditor_name: str
    creditor_iban: str
    rail_task_queue: str
    approval_timeout_seconds: int = 900
    submit_max_attempts: int = Field(default=5, ge=1)
    submit_initial_interval_seconds: float = 1.0
    poll_interval_seconds: float = 30.0
    poll_max_interval_seconds: float = 600.0
    hold_ttl_seconds: int = 30 * 24 * 3600
    hold_margin_seconds: int = 24 * 3600  # requires_action ends this long before hold expiry
    activity_timeout_seconds: float = 30.0  # DB activities; a dead worker's is retried after it


class ApprovalDecision(BaseModel):
    """`approve` update argument: only the outcome of the TOTP check done by the API."""

    approved: bool


class RailPaymentSnapshot(BaseModel):
    """A payment as the rail last reported it (activity result or `rail_event` signal)."""

    rail_payment_id: str
    status: RailStatus
    reason: str | None = None
    amount: int | None = None  # None: the rail did not say (or a history from before)
    currency: str | None = None

    def disagreement(self, rail_payment_id: str | None, amount: int, currency: str) -> str | None:
        """Why this report is not about our payment (other rail id, amount or currency)."""
        if rail_payment_id is not None and self.rail_payment_id != rail_payment_id:
            return f"rail payment {self.rail_payment_id}, ours is {rail_payment_id}"
        if self.amount is not None and self.amount != amount:
            return f"amount {self.amount}, ours is {amount}"
        if self.currency is not None and self.currency != currency:
            return f"currency {self.currency}, ours is {currency}"
        return None

    @property
    def is_final(self) -> bool:
        """Settled, rejected or cancelled at the rail."""
        return self.status in RAIL_OUTCOMES


class RailLookup(BaseModel):
    """Result of asking the rail about a reference: the payment, or None if it has none."""

    payment: RailPaymentSnapshot | None = None


class RailSubmitInput(BaseModel):
    """Submit an outbound payment; `reference` (the payment id) makes it idempotent."""

    reference: str
    amount: int
    currency: str
    creditor_name: str
    creditor_iban: str
    debtor_account: str


class RailStatusInput(BaseModel):
    """Look a payment up at the rail by our reference."""

    reference: str


class RailCancelInput(BaseModel):
    """Cancel a payment at the rail (answers its final state if it is too late)."""

    rail_payment_id: str
    reference: str


# --- recovery: stranded payments and payments whose workflow ended without finishing them ---


class ReconcileStrandedInput(BaseModel):
    """ReconcileStrandedWorkflow arguments (from settings, via the schedule)."""

    grace_seconds: float = 60.0  # a row younger than this may still be starting its workflow
    batch_size: int = Field(default=100, ge=1, le=1000)
    max_batches: int = Field(default=20, ge=1)
    rail_task_queue: str = "vortex-external"
    activity_timeout_seconds: float = 30.0


class RecoverStrandedInput(BaseModel):
    """One page of non-terminal payments to check, after a keyset position."""

    grace_seconds: float
    limit: int
    after_created_at: datetime | None = None
    after_id: uuid.UUID | None = None


class ReconcileCandidate(BaseModel):
    """An external payment whose workflow ended without finishing it: the rail decides."""

    payment_id: uuid.UUID
    amount: int
    currency: str
    rail_payment_id: str | None = None


class RecoverStrandedResult(BaseModel):
    """What one page did: workflows started, transfers resolved, externals to reconcile."""

    checked: int = 0
    started: list[uuid.UUID] = Field(default_factory=list)
    resolved: list[uuid.UUID] = Field(default_factory=list)
    to_reconcile: list[ReconcileCandidate] = Field(default_factory=list)
    next_created_at: datetime | None = None  # None: this was the last page
    next_id: uuid.UUID | None = None


class ReconcileStrandedResult(BaseModel):
    """ReconcileStrandedWorkflow's result and `status` query answer."""

    checked: int = 0
    started: int = 0
    resolved: int = 0
    left_for_later: int = 0  # the rail still has them pending, or could not be reached
    batches: int = 0


class ResolvePaymentInput(BaseModel):
    """Give a non-terminal payment its final status (hold captured or released with it)."""

    payment_id: uuid.UUID
    outcome: PaymentStatus
    reason: str | None = None
    actor: str  # who decided: `reconciler`, `cli:<user>`, `api` (audited)


class ResolvedPayment(BaseModel):
    """The payment after resolution; `changed` False when it was already terminal."""

    payment_id: uuid.UUID
    status: PaymentStatus
    changed: bool
    hold: str | None = None  # what happened to its hold: captured, released, already ..., none
