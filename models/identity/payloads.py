"""RegistrationWorkflow and registration activity payloads (ids, digests and durations only)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from models.identity.tables import RegistrationStatus


class RegistrationInput(BaseModel):
    """Start arguments; durations are inputs so tests can shorten them."""

    registration_id: uuid.UUID
    user_id: uuid.UUID
    email_task_queue: str
    code_ttl_seconds: int = 900
    max_attempts: int = 5
    resend_cooldown_seconds: int = 60
    expiry_seconds: int = 86400
    activity_timeout_seconds: float | None = None  # None: the default database step timeout


class RegistrationState(BaseModel):
    """What the `status` query answers."""

    registration_id: uuid.UUID
    status: RegistrationStatus
    attempts_left: int
    codes_sent: int
    resend_available_at: datetime | None = None
    expires_at: datetime | None = None


class RegistrationResult(BaseModel):
    """How the registration ended."""

    registration_id: uuid.UUID
    status: RegistrationStatus


class VerifyEmailInput(BaseModel):
    """A submitted verification code, as a keyed digest."""

    code_digest: str = Field(min_length=64, max_length=64)


class CompleteMfaInput(BaseModel):
    """Sent once the TOTP code was verified: digests of the new recovery codes."""

    recovery_code_digests: list[str] = Field(min_length=1, max_length=20)


class SendCodeInput(BaseModel):
    """Which code to (re)send: the nth code of a registration."""

    registration_id: uuid.UUID
    sequence: int
    ttl_seconds: int


class CheckCodeInput(BaseModel):
    """A code digest to check against the latest code sent."""

    registration_id: uuid.UUID
    sequence: int
    code_digest: str


class CodeCheck(BaseModel):
    """Outcome of a code check."""

    outcome: str  # "ok" | "wrong" | "expired"


class ActivateInput(BaseModel):
    """Activate the registered user with these recovery code digests."""

    registration_id: uuid.UUID
    recovery_code_digests: list[str]


class CloseRegistrationInput(BaseModel):
    """Finish an unsuccessful registration and free its email."""

    registration_id: uuid.UUID
    status: RegistrationStatus
