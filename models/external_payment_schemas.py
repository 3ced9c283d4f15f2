"""API schemas for payment methods (beneficiaries, card tokens) and external payments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from models.account_schemas import CurrencyCode
from models.auth_schemas import StrictModel
from models.payment import PaymentMethodKind
from models.payment_schemas import AmountText

BeneficiaryName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140)
]
IbanText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
CardToken = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_\-]{8,200}$")
]
Last4 = Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
TotpCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]


class PaymentMethodBody(StrictModel):
    """A beneficiary (`name` + `iban`) or a tokenised card (`card_token`, optional `last4`)."""

    name: BeneficiaryName | None = None
    iban: IbanText | None = None
    card_token: CardToken | None = Field(
        default=None, description="a card processor's token, never a card number"
    )
    last4: Last4 | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PaymentMethodBody:
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


class PaymentMethodView(BaseModel):
    """A saved payment method; cards show only their last four digits, never the token."""

    id: uuid.UUID
    kind: PaymentMethodKind
    name: str
    iban: str | None = None
    card_last4: str | None = None
    created_at: datetime


class PaymentMethodList(BaseModel):
    """The caller's payment methods, newest first."""

    items: list[PaymentMethodView]


class ExternalPaymentBody(StrictModel):
    """A payment from one of the caller's accounts to one of the caller's saved beneficiaries."""

    from_account_id: uuid.UUID
    payment_method_id: uuid.UUID
    amount: AmountText = Field(description="decimal string in major units, e.g. '12.34'")
    currency: CurrencyCode
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=140)] = ""


class ApproveBody(StrictModel):
    """The customer's TOTP code approving a payment held for review."""

    totp_code: TotpCode
