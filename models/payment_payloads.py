"""Payment workflow inputs, results and query answers (ids and amounts only, nothing secret)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from models.payment import PaymentStatus


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


class PaymentStatusChange(BaseModel):
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
