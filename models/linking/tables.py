"""Linked external accounts (verified by micro-deposits)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk


class LinkStatus(StrEnum):
    """Micro-deposit verification of an external account."""

    PENDING_CONFIRMATION = "pending_confirmation"
    LINKED = "linked"
    FAILED = "failed"
    EXPIRED = "expired"


class LinkedAccount(SQLModel, table=True):
    """An external bank account linked to one of the customer's accounts."""

    __tablename__ = "linked_accounts"
    __table_args__ = (
        CheckConstraint(sql_in("status", LinkStatus), name="ck_linked_accounts_status"),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT", index=True)
    account_id: uuid.UUID = Field(foreign_key="ledger_accounts.id", ondelete="RESTRICT")
    iban: str = Field(max_length=34)
    holder_name: str = Field(max_length=140)
    status: LinkStatus = Field(sa_type=String(24))
    workflow_id: str = Field(max_length=200, unique=True)
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)
