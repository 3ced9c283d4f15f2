"""API schemas for transfers, external payments and payment methods."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from models.accounts.schemas import CurrencyCode
from models.base import StrictModel, aware_utc
from models.money import Money
from models.payments.tables import PaymentKind, PaymentMethodKind, PaymentStatus
from models.text import SINGLE_LINE

AmountText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), SINGLE_LINE
]


AccountNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\d{12}$"), SINGLE_LINE
]


PaymentDescription = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=140), SINGLE_LINE
]
"""A payment reference: one line, as the rail carries it."""


class TransferCreate(StrictModel):
    """An internal transfer: to one of the caller's accounts (id) or another customer's
    (account number); same currency; optionally scheduled."""

    from_account_id: uuid.UUID
    to_account_id: uuid.UUID | None = None
    to_account_number: AccountNumber | None = None
    amount: AmountText = Field(description="decimal string in major units, e.g. '12.34'")
    currency: CurrencyCode
    description: PaymentDescription = ""
    execute_at: datetime | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> TransferCreate:
        if (self.to_account_id is None) == (self.to_account_number is None):
            raise ValueError("give exactly one of to_account_id and to_account_number")
        return self

    @field_validator("execute_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value, "execute_at")


class PaymentPublic(BaseModel):
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

    items: list[PaymentPublic]
    next_cursor: str | None = None


class PaymentStatusPublic(BaseModel):
    """Live status (from the workflow while it runs, from the database after)."""

    payment_id: uuid.UUID
    status: PaymentStatus
    failure_reason: str | None = None
    source: str  # "workflow" | "database"


BeneficiaryName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140), SINGLE_LINE
]


IbanText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), SINGLE_LINE
]


CardToken = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_\-]{8,200}$"),
    SINGLE_LINE,
]


Last4 = Annotated[str, StringConstraints(pattern=r"^\d{4}$"), SINGLE_LINE]


TotpCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$"), SINGLE_LINE]


class PaymentMethodCreate(StrictModel):
    """A beneficiary (`name` + `iban`) or a tokenised card (`card_token`, optional `last4`)."""

    name: BeneficiaryName | None = None
    iban: IbanText | None = None
    card_token: CardToken | None = Field(
        default=None, description="a card processor's token, never a card number"
    )
    last4: Last4 | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PaymentMethodCreate:
        if (self.iban is None) == (self.card_token is None):
            raise ValueError("give either iban (with name) or card_token")
        if self.iban is not None and self.name is None:
            raise ValueError("a beneficiary needs a name")
        if self.iban is not None and self.last4 is not None:
            raise ValueError("last4 belongs to cards")
        return self

    @property
    def kind(self) -> PaymentMethodKind:
        """What is being saved."""
        return PaymentMethodKind.IBAN if self.iban is not None else PaymentMethodKind.CARD


class PaymentMethodPublic(BaseModel):
    """A saved payment method; cards show only their last four digits, never the token."""

    id: uuid.UUID
    kind: PaymentMethodKind
    name: str
    iban: str | None = None
    card_last4: str | None = None
    created_at: datetime


class PaymentMethodList(BaseModel):
    """The caller's payment methods, newest first."""

    items: list[PaymentMethodPublic]


class ExternalPaymentCreate(StrictModel):
    """A payment from one of the caller's accounts to one of the caller's saved beneficiaries."""

    from_account_id: uuid.UUID
    payment_method_id: uuid.UUID
    amount: AmountText = Field(description="decimal string in major units, e.g. '12.34'")
    currency: CurrencyCode
    description: PaymentDescription = ""


class ApproveBody(StrictModel):
    """The customer's TOTP code approving a payment held for review."""

    totp_code: TotpCode
