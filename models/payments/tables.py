"""Payments (transfers and external payments), saved payment methods and received webhook events."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk


class PaymentKind(StrEnum):
    """Internal transfers stay in the ledger; external payments go out through the rail."""

    INTERNAL_TRANSFER = "internal_transfer"
    EXTERNAL = "external"


# The predicate of the partial index on payments still in flight (terminal statuses left out).
OPEN_PAYMENTS_SQL = "status NOT IN ('completed', 'rejected', 'cancelled', 'failed')"


class PaymentStatus(StrEnum):
    """Lifecycle of a payment; the last four are terminal."""

    SCHEDULED = "scheduled"
    PENDING_APPROVAL = "pending_approval"
    PROCESSING = "processing"
    SUBMITTED = "submitted"
    REQUIRES_ACTION = "requires_action"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """True once nothing more will happen to the payment."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        PaymentStatus.COMPLETED,
        PaymentStatus.REJECTED,
        PaymentStatus.CANCELLED,
        PaymentStatus.FAILED,
    }
)


class Payment(SQLModel, table=True):
    """One payment request of a customer; the workflow keeps it up to date."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="ux_payments_user_idempotency_key"),
        CheckConstraint(sql_in("kind", PaymentKind), name="ck_payments_kind"),
        CheckConstraint(sql_in("status", PaymentStatus), name="ck_payments_status"),
        CheckConstraint("amount > 0", name="ck_payments_amount_positive"),
        Index("ix_payments_user_created", "user_id", "created_at"),
        # Payments still in flight, by status: the `vortex_payments_open` gauge (read at each
        # scrape), ops lists by status, the reconcilers. Terminal rows (most) are not in it.
        Index(
            "ix_payments_open_status",
            "status",
            "created_at",
            postgresql_where=text(OPEN_PAYMENTS_SQL),
        ),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    kind: PaymentKind = Field(sa_type=String(24))
    status: PaymentStatus = Field(sa_type=String(24))
    from_account_id: uuid.UUID = Field(foreign_key="ledger_accounts.id", ondelete="RESTRICT")
    to_account_id: uuid.UUID | None = Field(
        default=None, foreign_key="ledger_accounts.id", ondelete="RESTRICT"
    )
    payment_method_id: uuid.UUID | None = Field(
        default=None, foreign_key="payment_methods.id", ondelete="RESTRICT"
    )
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    description: str = Field(default="", max_length=500)
    idempotency_key: str = Field(max_length=64)  # sha256 of the client's Idempotency-Key
    request_hash: str = Field(max_length=64)
    workflow_id: str = Field(max_length=200, unique=True)
    execute_at: datetime | None = timestamp(nullable=True)
    rail_payment_id: str | None = Field(default=None, max_length=100)
    failure_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)
    completed_at: datetime | None = timestamp(nullable=True)


class PaymentMethodKind(StrEnum):
    """A bank account (IBAN) beneficiary or a tokenised card."""

    IBAN = "iban"
    CARD = "card"


class PaymentMethod(SQLModel, table=True):
    """A saved beneficiary of a customer; deletion is soft so past payments keep it."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        CheckConstraint(sql_in("kind", PaymentMethodKind), name="ck_payment_methods_kind"),
        CheckConstraint(
            "(kind = 'iban') = (iban IS NOT NULL) AND (kind = 'card') = (card_token IS NOT NULL)",
            name="ck_payment_methods_fields",
        ),
        Index("ix_payment_methods_user", "user_id", "created_at"),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    kind: PaymentMethodKind = Field(sa_type=String(8))
    name: str = Field(max_length=140)
    iban: str | None = Field(default=None, max_length=34)
    card_token: str | None = Field(default=None, max_length=200)
    card_last4: str | None = Field(default=None, max_length=4)
    created_at: datetime = timestamp(server_now=True)
    deleted_at: datetime | None = timestamp(nullable=True)


class WebhookEvent(SQLModel, table=True):
    """A rail webhook accepted once (its event id is unique), for dedupe and audit."""

    __tablename__ = "webhook_events"

    event_id: str = Field(max_length=100, primary_key=True)
    type: str = Field(max_length=50)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    received_at: datetime = timestamp(server_now=True)
