"""API schemas for payments (transfers and external payments)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from models.account_schemas import CurrencyCode
from models.auth_schemas import StrictModel
from models.money_schemas import Money
from models.payment import PaymentKind, PaymentStatus

AmountText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
AccountNumber = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{12}$")]


class TransferBody(StrictModel):
    """An internal transfer: to one of the caller's accounts (id) or another customer's
    (account number); same currency; optionally scheduled."""

    from_account_id: uuid.UUID
    to_account_id: uuid.UUID | None = None
    to_account_number: AccountNumber | None = None
    amount: AmountText = Field(description="decimal string in major units, e.g. '12.34'")
    currency: CurrencyCode
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=140)] = ""
    execute_at: datetime | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> TransferBody:
        if (self.to_account_id is None) == (self.to_account_number is None):
            raise ValueError("give exactly one of to_account_id and to_account_number")
        if self.execute_at is not None and self.execute_at.tzinfo is None:
            raise ValueError("execute_at must include a timezone")
        return self


class PaymentView(BaseModel):
    """A payment as the customer sees it."""

    id: uuid.UUID
    kind: PaymentKind
    status: PaymentStatus
    amount: Money
    from_account_id: uuid.UUID
    to_account_id: uuid.UUID | None = None
    payment_method_id: uuid.UUID | None = None
    description: str
    execute_at: datetime | None = None
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    status_url: str


class PaymentPage(BaseModel):
    """A page of payments, newest first."""

    items: list[PaymentView]
    next_cursor: str | None = None


class PaymentStatusView(BaseModel):
    """Live status (from the workflow while it runs, from the database after)."""

    payment_id: uuid.UUID
    status: PaymentStatus
    failure_reason: str | None = None
    source: str  # "workflow" | "database"
