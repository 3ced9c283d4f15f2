"""Double-entry ledger tables: accounts, journal entries, postings, holds, the customer-facing
transactions read model and the domain-event outbox.

Sign convention (one for every account): a posting's `amount` is signed minor units, positive =
credit, negative = debit, and an account's `posted` balance is the sum of its postings. Customer
accounts are liabilities of the bank, so a credit (deposit, incoming transfer) raises their balance
and they can never go below zero available. System accounts mirror the outside world and may go
negative: money that entered the bank from outside leaves `external_settlement` with a negative
(debit) balance. Every journal entry sums to zero per currency, hence so does the whole ledger.

`held` is the total of an account's pending holds (always >= 0); available = posted - held.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    Identity,
    Index,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk

# Text-search configuration of `transactions.search`; queries must use the same one, e.g.
# `transaction_search_column().op("@@")(func.websearch_to_tsquery(SEARCH_CONFIG, q))`.
SEARCH_CONFIG = "english"


TRANSACTION_EVENTS_TOPIC = "transaction.events"


class AccountKind(StrEnum):
    """Customer accounts belong to a user; the others are the bank's, one per currency."""

    CUSTOMER = "customer"
    EXTERNAL_SETTLEMENT = "external_settlement"
    FEES = "fees"
    SUSPENSE = "suspense"
    # The counterpart of balances brought over from the legacy monolith (opening entries);
    # created on first use per currency, not with the others.
    MIGRATION_EQUITY = "migration_equity"


SYSTEM_KINDS: tuple[AccountKind, ...] = (
    AccountKind.EXTERNAL_SETTLEMENT,
    AccountKind.FEES,
    AccountKind.SUSPENSE,
)


class AccountType(StrEnum):
    """Product type of a customer account."""

    CHECKING = "checking"
    SAVINGS = "savings"


class AccountStatus(StrEnum):
    """Closed accounts have zero balance and take no postings."""

    OPEN = "open"
    CLOSED = "closed"


class HoldStatus(StrEnum):
    """A hold is pending until resolved exactly once."""

    PENDING = "pending"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


class TransactionStatus(StrEnum):
    """What the customer sees; `pending` rows are holds not yet captured; `memo` rows are the
    customer's own notes (a cash expense for the budget) and never moved money."""

    PENDING = "pending"
    POSTED = "posted"
    RELEASED = "released"
    EXPIRED = "expired"
    FAILED = "failed"
    MEMO = "memo"


class Direction(StrEnum):
    """Money out of (debit) or into (credit) the customer's account."""

    DEBIT = "debit"
    CREDIT = "credit"


_CURRENCY_FORMAT = "currency ~ '^[A-Z]{3}$'"


class LedgerAccount(SQLModel, table=True):
    """A ledger account: a customer's checking/savings account or a per-currency system account."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(sql_in("kind", AccountKind), name="ck_ledger_accounts_kind"),
        CheckConstraint(sql_in("status", AccountStatus), name="ck_ledger_accounts_status"),
        CheckConstraint(_CURRENCY_FORMAT, name="ck_ledger_accounts_currency"),
        CheckConstraint("held >= 0", name="ck_ledger_accounts_held_non_negative"),
        CheckConstraint(
            "kind <> 'customer' OR posted - held >= 0",
            name="ck_ledger_accounts_customer_available_non_negative",
        ),
        CheckConstraint(
            "(kind = 'customer') = (owner_user_id IS NOT NULL AND number IS NOT NULL"
            " AND type IS NOT NULL)",
            name="ck_ledger_accounts_customer_fields",
        ),
        CheckConstraint(
            f"type IS NULL OR {sql_in('type', AccountType)}", name="ck_ledger_accounts_type"
        ),
        CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL)",
            name="ck_ledger_accounts_closed_at",
        ),
        CheckConstraint(
            "status = 'open' OR (posted = 0 AND held = 0)",
            name="ck_ledger_accounts_closed_is_empty",
        ),
        # One system account of each kind per currency.
        Index(
            "ux_ledger_accounts_system_kind_currency",
            "kind",
            "currency",
            unique=True,
            postgresql_where=text("kind <> 'customer'"),
        ),
    )

    id: uuid.UUID = uuid_pk()
    kind: AccountKind = Field(sa_type=String(24))
    type: AccountType | None = Field(default=None, sa_type=String(16))
    owner_user_id: uuid.UUID | None = Field(
        default=None, foreign_key="users.id", ondelete="RESTRICT", index=True
    )
    name: str = Field(max_length=100)
    number: str | None = Field(default=None, max_length=12, unique=True)
    currency: str = Field(max_length=3)
    status: AccountStatus = Field(default=AccountStatus.OPEN, sa_type=String(8))
    posted: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    held: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    request_hash: str | None = Field(default=None, max_length=64)
    opened_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)
    closed_at: datetime | None = timestamp(nullable=True)

    @property
    def available(self) -> int:
        """Posted minus held, in minor units."""
        return self.posted - self.held


class JournalEntry(SQLModel, table=True):
    """An immutable double-entry journal entry; its postings sum to zero per currency."""

    __tablename__ = "journal_entries"

    id: uuid.UUID = uuid_pk()
    idempotency_key: str = Field(max_length=200, unique=True)
    request_hash: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    description: str = Field(default="", max_length=500)
    created_at: datetime = timestamp(server_now=True)


class Posting(SQLModel, table=True):
    """One leg of a journal entry: a signed amount (credit > 0) on one account."""

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="ck_postings_amount_non_zero"),
        CheckConstraint(_CURRENCY_FORMAT, name="ck_postings_currency"),
        Index("ux_postings_entry_account", "entry_id", "account_id", unique=True),
        Index("ix_postings_account_id_id", "account_id", "id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    # References to the entry and the account are checked per statement by a trigger, not by
    # foreign keys (migration 0015, decision 90).
    entry_id: uuid.UUID
    account_id: uuid.UUID
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    balance_after: int = Field(sa_type=BigInteger)


class Hold(SQLModel, table=True):
    """A two-phase reservation of funds on an account (TigerBeetle-style pending transfer).

    Pending holds raise the account's `held`; capture posts up to `amount` to the counterparty
    account and releases the rest; release and expiry just drop the reservation.
    """

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint(sql_in("status", HoldStatus), name="ck_holds_status"),
        CheckConstraint(_CURRENCY_FORMAT, name="ck_holds_currency"),
        CheckConstraint("amount > 0", name="ck_holds_amount_positive"),
        CheckConstraint(
            "(status = 'captured')"
            " = (captured_amount IS NOT NULL AND capture_entry_id IS NOT NULL)",
            name="ck_holds_captured_fields",
        ),
        CheckConstraint(
            "captured_amount IS NULL OR (captured_amount > 0 AND captured_amount <= amount)",
            name="ck_holds_captured_amount",
        ),
        CheckConstraint(
            "(status = 'pending') = (resolved_at IS NULL)", name="ck_holds_resolved_at"
        ),
        Index(
            "ix_holds_pending_expires_at",
            "expires_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: uuid.UUID = uuid_pk()
    account_id: uuid.UUID = Field(foreign_key="ledger_accounts.id", ondelete="RESTRICT", index=True)
    counterparty_account_id: uuid.UUID = Field(
        foreign_key="ledger_accounts.id", ondelete="RESTRICT"
    )
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    status: HoldStatus = Field(default=HoldStatus.PENDING, sa_type=String(10))
    captured_amount: int | None = Field(default=None, sa_type=BigInteger)
    capture_entry_id: uuid.UUID | None = Field(
        default=None, foreign_key="journal_entries.id", ondelete="RESTRICT"
    )
    description: str = Field(default="", max_length=500)
    merchant: str | None = Field(default=None, max_length=200)
    idempotency_key: str = Field(max_length=200, unique=True)
    request_hash: str = Field(max_length=64)
    expires_at: datetime = timestamp()
    created_at: datetime = timestamp(server_now=True)
    resolved_at: datetime | None = timestamp(nullable=True)


class Transaction(SQLModel, table=True):
    """The customer's view of one journal-entry leg (or pending hold) on a customer account.

    A read model: unlike postings its status and category change (pending -> posted, user
    recategorizes). `amount` is always positive; `direction` says which way money moved.
    """

    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint(sql_in("status", TransactionStatus), name="ck_transactions_status"),
        CheckConstraint(sql_in("direction", Direction), name="ck_transactions_direction"),
        CheckConstraint(_CURRENCY_FORMAT, name="ck_transactions_currency"),
        CheckConstraint("amount > 0", name="ck_transactions_amount_positive"),
        # A memo is a note, never a movement: it may not point at a journal entry or a hold.
        CheckConstraint(
            "status <> 'memo' OR (journal_entry_id IS NULL AND hold_id IS NULL)",
            name="ck_transactions_memo_moves_no_money",
        ),
        # Partial indexes: most rows have neither, so the hot path pays nothing for them.
        Index(
            "ux_transactions_account_external_id",
            "account_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        Index("ix_transactions_hold_id", "hold_id", postgresql_where=text("hold_id IS NOT NULL")),
        # Keyset pagination: (occurred_at, id) descending within an account or a user.
        Index("ix_transactions_account_occurred", "account_id", "occurred_at", "id"),
        Index("ix_transactions_user_occurred", "user_id", "occurred_at", "id"),
    )

    id: uuid.UUID = uuid_pk()
    # The account (with its owner as user_id) and the entry are checked per statement by
    # triggers, not by foreign keys (migration 0015, decision 90).
    account_id: uuid.UUID
    user_id: uuid.UUID
    journal_entry_id: uuid.UUID | None = Field(default=None, index=True)
    hold_id: uuid.UUID | None = Field(default=None, foreign_key="holds.id", ondelete="RESTRICT")
    kind: str = Field(max_length=32)
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    direction: Direction = Field(sa_type=String(6))
    status: TransactionStatus = Field(sa_type=String(10))
    counterparty: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=500)
    merchant: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=32)
    external_id: str | None = Field(default=None, max_length=100)
    occurred_at: datetime = timestamp()
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)


# The full-text vector is a generated column that the ORM never loads (it is only queried), so it
# lives on the table but not on the mapped class; use `transaction_search_column()` in queries.
_transactions_table: Table = Transaction.__table__  # type: ignore[attr-defined]


_transactions_table.append_column(
    Column(
        "search",
        TSVECTOR,
        Computed(
            f"to_tsvector('{SEARCH_CONFIG}'::regconfig, "
            "coalesce(description, '') || ' ' || coalesce(merchant, ''))",
            persisted=True,
        ),
        nullable=True,
    )
)


Index("ix_transactions_search", _transactions_table.c.search, postgresql_using="gin")


def transaction_search_column() -> Column[Any]:
    """The generated `transactions.search` tsvector column, for full-text queries."""
    column: Column[Any] = _transactions_table.c.search
    return column


class OutboxEvent(SQLModel, table=True):
    """A domain event written in the same transaction as the change; relayed to Redis later."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        Index(
            "ix_outbox_published_at",
            "published_at",
            postgresql_where=text("published_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    topic: str = Field(max_length=64)
    type: str = Field(max_length=64)
    aggregate_id: uuid.UUID
    user_id: uuid.UUID | None = Field(default=None)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = timestamp(server_now=True)
    published_at: datetime | None = timestamp(nullable=True)
