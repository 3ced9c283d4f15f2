"""The simulator's configuration and wire models (its own HTTP contract, as an external rail's)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

PaymentStatus = Literal["pending", "settled", "rejected", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"settled", "rejected", "cancelled"})
DeliveryState = Literal["pending", "delivered", "failed", "skipped"]

# Valid (mod-97) IBANs that the simulator always rejects: deterministic reject paths in tests.
REJECT_IBANS: frozenset[str] = frozenset(
    {"DE76999999990000000404", "GB54REJT00000000000404", "FR3599999999990000000040467"}
)
# Any creditor name containing this word (case-insensitive) is rejected at settlement.
REJECT_NAME_MARKER = "REJECT"


def _normalize_iban(value: object) -> object:
    return value.replace(" ", "").upper() if isinstance(value, str) else value


def _check_iban_shape(value: str) -> str:
    if not (value[:2].isalpha() and value[2:4].isdigit() and value[4:].isalnum()):
        raise ValueError("not an IBAN (country code, check digits, alphanumeric BBAN)")
    return value


Iban = Annotated[
    str,
    BeforeValidator(_normalize_iban),
    Field(min_length=15, max_length=34, pattern=r"^[A-Z0-9]+$"),
    AfterValidator(_check_iban_shape),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[int, Field(strict=True, gt=0, le=10**15)]
Reference = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=140)]


class RailConfig(BaseModel):
    """How the simulated rail behaves; rates and delay can be changed at runtime (/v1/control)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_secret: str = Field(min_length=1, repr=False)
    callback_url: str | None = None  # our API's webhook URL; None sends no webhooks
    settle_delay_seconds: float = Field(2.0, ge=0)
    transient_failure_rate: float = Field(0.0, ge=0, le=1)
    reject_rate: float = Field(0.0, ge=0, le=1)
    seed: int | None = None  # deterministic failures/rejections when set
    reject_ibans: frozenset[str] = REJECT_IBANS
    webhook_max_attempts: int = Field(8, ge=1)
    webhook_backoff_seconds: float = Field(0.5, gt=0)  # doubles per attempt ...
    webhook_backoff_max_seconds: float = Field(30.0, gt=0)  # ... up to this
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    state_file: Path | None = None  # SQLite file keeping payments across restarts; None: memory


class PaymentRequest(BaseModel):
    """An outbound payment instruction; `reference` is the sender's idempotency key."""

    model_config = ConfigDict(extra="forbid")

    reference: Reference
    amount: Amount
    currency: Currency
    creditor_name: Name
    creditor_iban: Iban
    debtor_account: Annotated[str, Field(min_length=1, max_length=64)]


class PaymentView(BaseModel):
    """A payment as the rail reports it."""

    rail_payment_id: str
    reference: str
    status: PaymentStatus
    reason: str | None
    amount: int
    currency: str
    creditor_name: str
    creditor_iban: str
    debtor_account: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class RejectRequest(BaseModel):
    """Optional reason for a forced rejection."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class InboundRequest(BaseModel):
    """Money sent into the bank by an outside debtor."""

    model_config = ConfigDict(extra="forbid")

    to_account_number: Annotated[str, Field(min_length=1, max_length=64)]
    amount: Amount
    currency: Currency
    debtor_name: Name
    debtor_iban: Iban
    reference: Annotated[str, Field(max_length=140)] | None = None


class ControlUpdate(BaseModel):
    """Runtime changes; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    settle_delay_seconds: Annotated[float, Field(ge=0)] | None = None
    transient_failure_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    reject_rate: Annotated[float, Field(ge=0, le=1)] | None = None


class ControlState(BaseModel):
    """The current runtime behaviour."""

    settle_delay_seconds: float
    transient_failure_rate: float
    reject_rate: float


class PaymentEvent(BaseModel):
    """Webhook body sent when a payment reaches settled or rejected."""

    event_id: str
    type: Literal["payment.settled", "payment.rejected"]
    rail_payment_id: str
    reference: str
    status: PaymentStatus
    reason: str | None
    amount: int
    currency: str
    occurred_at: datetime


class InboundEvent(BaseModel):
    """Webhook body sent for an inbound payment."""

    event_id: str
    type: Literal["inbound.received"] = "inbound.received"
    inbound_id: str
    to_account_number: str
    amount: int
    currency: str
    debtor_name: str
    debtor_iban: str
    reference: str | None
    occurred_at: datetime


class InboundAccepted(BaseModel):
    """Answer to POST /v1/inbound: the webhook is on its way."""

    inbound_id: str
    event_id: str
    status: Literal["accepted"] = "accepted"


class DeliveryView(BaseModel):
    """Delivery state of one webhook event (for tests and demos)."""

    event_id: str
    type: str
    state: DeliveryState
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
