"""Identity tables: users, registrations, email verifications, recovery codes and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, String, text
from sqlmodel import Field, SQLModel

from models.base import timestamp, uuid_pk


class UserStatus(StrEnum):
    """Lifecycle of a user: pending until email and MFA are verified."""

    PENDING = "pending"
    ACTIVE = "active"
    DISABLED = "disabled"


class User(SQLModel, table=True):
    """A customer. Email is stored lower-cased and unique."""

    __tablename__ = "users"
    __table_args__ = (Index("ux_users_email_lower", text("lower(email)"), unique=True),)

    id: uuid.UUID = uuid_pk()
    email: str = Field(max_length=254)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    password_hash: str = Field(max_length=255)
    status: UserStatus = Field(default=UserStatus.PENDING, sa_type=String(16))
    mfa_secret_encrypted: str | None = Field(default=None, max_length=512)
    mfa_enabled: bool = False
    totp_last_step: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)
    activated_at: datetime | None = timestamp(nullable=True)


class RecoveryCode(SQLModel, table=True):
    """A one-time MFA recovery code, stored as a keyed digest."""

    __tablename__ = "recovery_codes"

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    code_digest: str = Field(max_length=64, unique=True)
    created_at: datetime = timestamp(server_now=True)
    used_at: datetime | None = timestamp(nullable=True)


class RefreshToken(SQLModel, table=True):
    """A refresh token (digest only); tokens of one login form a rotation family."""

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = uuid_pk()
    family_id: uuid.UUID = Field(index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    token_digest: str = Field(max_length=64, unique=True)
    created_at: datetime = timestamp(server_now=True)
    expires_at: datetime = timestamp()
    used_at: datetime | None = timestamp(nullable=True)
    revoked_at: datetime | None = timestamp(nullable=True)


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


class KnownDevice(SQLModel, table=True):
    """A device a user has logged in from (keyed digest of its user agent): a login from one
    not seen before raises a `security.login_new_device` notice."""

    __tablename__ = "known_devices"

    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    fingerprint: str = Field(max_length=64, primary_key=True)
    first_seen_at: datetime = timestamp(server_now=True)
    last_seen_at: datetime = timestamp(server_now=True)
