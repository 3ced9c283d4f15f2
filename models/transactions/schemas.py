"""API schemas of the transactions API and the RecordExternalTransactionWorkflow payloads.

Amounts leave the API as `Money` (decimal string + exact minor units + currency) and enter it as
decimal strings in major units ("12.34"), parsed with `models.money.parse_amount` in the
route so a bad amount is a problem+json `invalid-amount`, never a float.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, field_validator

from models.accounts.schemas import CurrencyCode
from models.base import StrictModel, aware_utc
from models.ledger.payloads import TransactionRecord
from models.ledger.tables import Direction, Transaction, TransactionStatus
from models.money import Money
from models.text import NOTE, SINGLE_LINE

DEFAULT_PAGE_SIZE = 50


MAX_PAGE_SIZE = 200


MAX_QUERY_LENGTH = 200


ExternalId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SINGLE_LINE
]


OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), SINGLE_LINE]


Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NOTE]
"""A transaction's description: a note (tab and line feed allowed)."""


def _decimal_string(value: object) -> object:
    # JSON numbers are refused outright: 0.1 is not representable as a float.
    if not isinstance(value, str):
        raise ValueError('amounts must be decimal strings like "12.34", never numbers')
    return value


DecimalText = Annotated[
    str,
    BeforeValidator(_decimal_string),
    Field(max_length=40, description='decimal string in major units, e.g. "12.34"; never a float'),
    SINGLE_LINE,
]
EventId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"),
    SINGLE_LINE,
]
AccountNumberText = Annotated[str, StringConstraints(min_length=1, max_length=12), SINGLE_LINE]
CategoryName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=32),
    SINGLE_LINE,
]


class TransactionPublic(BaseModel):
    """The customer's view of one transaction: a positive amount and the direction it moved."""

    id: uuid.UUID
    account_id: uuid.UUID
    amount: Money
    direction: Direction
    status: TransactionStatus
    kind: str
    counterparty: str | None
    description: str
    merchant: str | None
    category: str | None
    external_id: str | None
    occurred_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, row: Transaction | TransactionRecord) -> TransactionPublic:
        """Build the view from a loaded row (or the ledger's view of one)."""
        return cls(
            id=row.id,
            account_id=row.account_id,
            amount=Money.of(row.amount, row.currency),
            direction=row.direction,
            status=row.status,
            kind=row.kind,
            counterparty=row.counterparty,
            description=row.description,
            merchant=row.merchant,
            category=row.category,
            external_id=row.external_id,
            occurred_at=row.occurred_at,
            created_at=row.created_at,
        )


class TransactionPage(BaseModel):
    """One page of transactions; pass `next_cursor` back as `cursor` for the next (None: end)."""

    items: list[TransactionPublic]
    next_cursor: str | None = None


class _EntryFields(StrictModel):
    """What a transaction says about money: amount, direction, who and what, when."""

    amount: DecimalText
    currency: CurrencyCode
    direction: Direction
    description: Description = ""
    merchant: OptionalText | None = None
    counterparty: OptionalText | None = None
    category: CategoryName | None = None
    occurred_at: datetime | None = None

    @field_validator("merchant", "counterparty")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value, "occurred_at")


class ManualEntryCreate(_EntryFields):
    """A customer's own note of money spent or received outside the bank (a cash expense for the
    budget). It is listed with status `memo` and moves no money: no balance, hold or analytics
    total changes. A retry with the same Idempotency-Key returns the first entry."""

    account_id: uuid.UUID
    direction: Direction = Direction.DEBIT


class ProcessorEvent(_EntryFields):
    """A card or cash transaction reported by the card processor / ATM network feed.

    `event_id` identifies the delivery (a redelivery is answered `duplicate`); `external_id` is
    the processor's transaction id and the ledger's idempotency key on that account: the same id
    with the same content is booked once, with other content it is declined.
    """

    event_id: EventId
    type: Literal["transaction.posted"] = "transaction.posted"
    account_number: AccountNumberText
    external_id: ExternalId
    kind: Literal["card", "cash"] = "card"


ProcessorOutcome = Literal[
    "recorded", "declined", "unmatched", "pending", "authorized", "cleared", "reversed"
]


class _CardEventFields(StrictModel):
    event_id: EventId
    account_number: AccountNumberText
    authorization_id: ExternalId


class CardAuthorizationEvent(_CardEventFields):
    """`authorization.created`: a card payment was authorised at a terminal; the bank places a
    hold for `amount` (or declines), until `expires_at` (default: the configured hold time)."""

    type: Literal["authorization.created"]
    amount: DecimalText
    currency: CurrencyCode
    description: Description = ""
    merchant: OptionalText | None = None
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value, "expires_at")


class CardClearingEvent(_CardEventFields):
    """`authorization.cleared`: the merchant settled; the bank captures `amount` (at most the
    authorised amount; the rest of the hold is released). `clearing_id` identifies the
    clearing across redeliveries."""

    type: Literal["authorization.cleared"]
    clearing_id: ExternalId
    amount: DecimalText


class CardReversalEvent(_CardEventFields):
    """`authorization.reversed`: the authorisation was cancelled; the bank releases the hold."""

    type: Literal["authorization.reversed"]


class ProcessorAck(BaseModel):
    """The answer to the processor: received, a replay or not, and what became of the event.

    `declined` carries the ledger's reason (e.g. `insufficient-funds`); `unmatched` means no
    open customer account has that number; `pending` means the booking is still running (ask
    again by redelivering, which is answered `duplicate`, or look the transaction up later).
    """

    received: bool = True
    duplicate: bool = False
    outcome: ProcessorOutcome | None = None
    transaction_id: uuid.UUID | None = None
    reason: str | None = None


class CategorizeBody(StrictModel):
    """Set a transaction's category (one of the ledger's categories)."""

    category: CategoryName


class CategoryTotal(BaseModel):
    """Money in and out of one category in one currency (posted transactions only)."""

    category: str
    currency: str
    money_in: Money
    money_out: Money
    count: int


class MonthTotal(BaseModel):
    """Money in and out during one calendar month (UTC) in one currency."""

    month: str = Field(description="YYYY-MM")
    currency: str
    money_in: Money
    money_out: Money
    net: Money
    count: int


class CurrencyTotal(BaseModel):
    """Money in and out over the whole range in one currency."""

    currency: str
    money_in: Money
    money_out: Money
    net: Money
    count: int


class TransactionAnalytics(BaseModel):
    """Totals per category and per month over a date range, grouped by currency."""

    start: datetime | None = Field(description="inclusive start of the range (None: open)")
    end: datetime | None = Field(description="exclusive end of the range (None: open)")
    account_id: uuid.UUID | None
    totals: list[CurrencyTotal]
    by_category: list[CategoryTotal]
    by_month: list[MonthTotal]
