"""Registrations (read model of RegistrationWorkflow) and email verification codes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from models.base import timestamp, uuid_pk


class RegistrationStatus(StrEnum):
    """Where a registration stands; terminal ones are completed, failed and expired."""

    AWAITING_EMAIL_VERIFICATION = "awaiting_email_verification"
    AWAITING_MFA = "awaiting_mfa"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True once the workflow has finished."""
        return self in {self.COMPLETED, self.FAILED, self.EXPIRED}


class Registration(SQLModel, table=True):
    """One sign-up attempt; `user_id` is cleared when an abandoned one is cleaned up."""

    __tablename__ = "registrations"

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID | None = Field(
        default=None, foreign_key="users.id", ondelete="SET NULL", index=True
    )
    status: RegistrationStatus = Field(
        default=RegistrationStatus.AWAITING_EMAIL_VERIFICATION, sa_type=String(32)
    )
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)
    completed_at: datetime | None = timestamp(nullable=True)


class EmailVerification(SQLModel, table=True):
    """A verification code sent for a registration (keyed digest only, never the code)."""

    __tablename__ = "email_verifications"

    id: uuid.UUID = uuid_pk()
    registration_id: uuid.UUID = Field(foreign_key="registrations.id", ondelete="CASCADE")
    send_key: str = Field(max_length=200, unique=True)
    code_digest: str = Field(max_length=64)
    expires_at: datetime = timestamp()
    created_at: datetime = timestamp(server_now=True)
    sent_at: datetime | None = timestamp(nullable=True)
