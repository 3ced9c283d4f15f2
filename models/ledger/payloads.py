"""Inputs and results of the ledger operations (plain functions and Temporal activities alike).

Amounts are `int` minor units; the API parses decimal strings with `models.money.parse_amount`.
Fields are deliberately permissive (plain `int`/`str`): the ledger validates them itself and
raises typed, non-retryable errors, rather than failing deserialization inside a worker.

Results hold only facts that never change afterwards, so a replay returns exactly the first
result; current state (balances, categories) is read separately.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.ledger.tables import (
    AccountKind,
    AccountStatus,
    AccountType,
    Direction,
    HoldStatus,
    LedgerAccount,
    Transaction,
    TransactionStatus,
)

DEFAULT_HOLD_TTL_SECONDS = 7 * 24 * 3600


class OpenAccountInput(BaseModel):
    """Open a customer account for a user."""

    idempotency_key: str
    owner_user_id: uuid.UUID
    currency: str
    type: AccountType = AccountType.CHECKING
    name: str


class OpenedAccount(BaseModel):
    """The account that was opened."""

    account_id: uuid.UUID
    number: str
    owner_user_id: uuid.UUID
    currency: str
    type: AccountType
    opened_at: datetime


class SystemAccounts(BaseModel):
    """The bank's system accounts of one currency."""

    currency: str
    external_settlement: uuid.UUID
    fees: uuid.UUID
    suspense: uuid.UUID


class EnsureSystemAccountsInput(BaseModel):
    """Create (if missing) the system accounts of a currency."""

    currency: str


class EntryLeg(BaseModel):
    """One leg of a journal entry: signed minor units on one account (credit > 0, debit < 0).

    The optional texts shape the customer's transaction row when the account is a customer's.
    """

    account_id: uuid.UUID
    amount: int
    currency: str
    counterparty: str | None = None
    description: str | None = None
    merchant: str | None = None
    category: str | None = None


class PostEntryInput(BaseModel):
    """A balanced multi-leg journal entry. With `owner_user_id`, every debited customer account
    must belong to that user (UnknownAccount otherwise)."""

    idempotency_key: str
    kind: str = "adjustment"
    description: str = ""
    legs: list[EntryLeg]
    occurred_at: datetime | None = None
    owner_user_id: uuid.UUID | None = None


class LedgerTransferInput(BaseModel):
    """Move `amount` minor units from one account to another of the same currency."""

    idempotency_key: str
    from_account_id: uuid.UUID
    to_account_id: uuid.UUID
    amount: int
    currency: str
    description: str = ""
    occurred_at: datetime | None = None
    owner_user_id: uuid.UUID | None = None


class PostingResult(BaseModel):
    """One posting as written, with the account's posted balance right after it."""

    account_id: uuid.UUID
    amount: int
    currency: str
    balance_after: int
    transaction_id: uuid.UUID | None = None


class EntryResult(BaseModel):
    """A posted journal entry."""

    entry_id: uuid.UUID
    idempotency_key: str
    kind: str
    description: str
    created_at: datetime
    postings: list[PostingResult]


class FundAccountInput(BaseModel):
    """Ops funding: credit a customer account from the currency's external settlement account."""

    idempotency_key: str
    account_id: uuid.UUID
    amount: int
    currency: str
    description: str = "Account funding"
    reason: str = ""
    actor_user_id: uuid.UUID | None = None
    client: str | None = None


class ExternalEntryInput(BaseModel):
    """A card or cash transaction from an external source, idempotent on (account, external_id).

    A debit moves money from the account to the external settlement account; a credit the reverse.
    """

    account_id: uuid.UUID
    external_id: str
    amount: int
    currency: str
    direction: Direction
    kind: str = "card"
    description: str = ""
    merchant: str | None = None
    counterparty: str | None = None
    category: str | None = None
    occurred_at: datetime | None = None
    owner_user_id: uuid.UUID | None = None


class ExternalTransactionResult(BaseModel):
    """The recorded external transaction and its journal entry."""

    transaction_id: uuid.UUID
    entry_id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    currency: str
    direction: Direction
    balance_after: int
    created_at: datetime


class PlaceHoldInput(BaseModel):
    """Reserve funds on an account until captured, released or expired.

    On capture the money goes to `counterparty_account_id` (default: the currency's external
    settlement account). `expires_at` wins over `ttl_seconds`. `kind` is the kind of the
    customer's pending transaction (e.g. a card authorisation).
    """

    idempotency_key: str
    account_id: uuid.UUID
    amount: int
    currency: str
    kind: str = "card"
    description: str = ""
    merchant: str | None = None
    counterparty_account_id: uuid.UUID | None = None
    ttl_seconds: int = DEFAULT_HOLD_TTL_SECONDS
    expires_at: datetime | None = None
    owner_user_id: uuid.UUID | None = None


class PlacedHold(BaseModel):
    """A hold as placed (pending)."""

    hold_id: uuid.UUID
    account_id: uuid.UUID
    counterparty_account_id: uuid.UUID
    amount: int
    currency: str
    expires_at: datetime
    transaction_id: uuid.UUID | None
    created_at: datetime


class CaptureHoldInput(BaseModel):
    """Capture a pending hold, fully (amount None) or partly; the rest is released."""

    hold_id: uuid.UUID
    amount: int | None = None
    owner_user_id: uuid.UUID | None = None


class ReleaseHoldInput(BaseModel):
    """Release a pending hold without moving money."""

    hold_id: uuid.UUID
    owner_user_id: uuid.UUID | None = None


class ResolvedHold(BaseModel):
    """A hold after its one resolution (captured, released or expired)."""

    hold_id: uuid.UUID
    account_id: uuid.UUID
    status: HoldStatus
    amount: int
    currency: str
    captured_amount: int | None
    capture_entry_id: uuid.UUID | None
    resolved_at: datetime


class ExpireHoldsInput(BaseModel):
    """Expire pending holds whose expiry is at or before `now` (default: the current time)."""

    now: datetime | None = None
    limit: int = Field(default=500, ge=1, le=10_000)


class ExpireHoldsResult(BaseModel):
    """Holds expired by this call."""

    expired: list[uuid.UUID]


class CloseAccountInput(BaseModel):
    """Close a customer account; a non-zero balance needs a sweep target of the same owner and
    currency, which receives the balance first."""

    account_id: uuid.UUID
    sweep_to_account_id: uuid.UUID | None = None
    owner_user_id: uuid.UUID | None = None


class ClosedAccount(BaseModel):
    """How the account was closed."""

    account_id: uuid.UUID
    closed_at: datetime
    swept_amount: int
    sweep_to_account_id: uuid.UUID | None
    sweep_entry_id: uuid.UUID | None


class RecategorizeInput(BaseModel):
    """Set a transaction's category (only the owner's, when `owner_user_id` is given)."""

    transaction_id: uuid.UUID
    category: str
    owner_user_id: uuid.UUID | None = None


class AccountRecord(BaseModel):
    """An account with its current balances (posted, held, available) in minor units."""

    id: uuid.UUID
    kind: AccountKind
    type: AccountType | None
    owner_user_id: uuid.UUID | None
    name: str
    number: str | None
    currency: str
    status: AccountStatus
    posted: int
    held: int
    available: int
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, account: LedgerAccount) -> AccountRecord:
        """Build the view from a loaded row."""
        return cls(
            id=account.id,
            kind=account.kind,
            type=account.type,
            owner_user_id=account.owner_user_id,
            name=account.name,
            number=account.number,
            currency=account.currency,
            status=account.status,
            posted=account.posted,
            held=account.held,
            available=account.posted - account.held,
            opened_at=account.opened_at,
            updated_at=account.updated_at,
            closed_at=account.closed_at,
        )


class TransactionRecord(BaseModel):
    """The customer's view of a transaction (amount positive, direction says which way)."""

    id: uuid.UUID
    account_id: uuid.UUID
    user_id: uuid.UUID
    journal_entry_id: uuid.UUID | None
    hold_id: uuid.UUID | None
    kind: str
    amount: int
    currency: str
    direction: Direction
    status: TransactionStatus
    counterparty: str | None
    description: str
    merchant: str | None
    category: str | None
    external_id: str | None
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Transaction) -> TransactionRecord:
        """Build the view from a loaded row."""
        return cls.model_validate(row, from_attributes=True)


class HoldExpiryInput(BaseModel):
    """ExpireHoldsWorkflow input: how many holds per batch, and at most how many batches."""

    batch_size: int = 500
    max_batches: int = 20
    activity_timeout_seconds: float | None = None


class HoldExpiryResult(BaseModel):
    """What one run expired."""

    expired: int
    batches: int


class PostEntryBatchInput(BaseModel):
    """Many journal entries posted in one database transaction (the batch posting path).

    Each entry has the single path's rules and idempotency key. With `atomic`, one rejected entry
    refuses the whole batch (the first rejection is raised); without it, each entry gets its own
    result and the valid ones are posted.
    """

    entries: list[PostEntryInput]
    atomic: bool = False


class BatchEntryStatus(StrEnum):
    """What happened to one entry of a batch."""

    POSTED = "posted"
    REPLAYED = "replayed"  # its key was used before (or earlier in the batch): the first result
    REJECTED = "rejected"


class BatchEntryResult(BaseModel):
    """One entry's outcome, in the order of the input."""

    idempotency_key: str
    status: BatchEntryStatus
    entry: EntryResult | None = None
    error_type: str | None = None  # a LedgerError type (UnbalancedEntry, InsufficientFunds, ...)
    error: str | None = None


class EntryBatchResult(BaseModel):
    """The outcome of a batch: one result per input entry, and counts."""

    results: list[BatchEntryResult]
    posted: int = 0
    replayed: int = 0
    rejected: int = 0
