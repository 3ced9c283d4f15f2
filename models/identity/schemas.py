"""API request and response schemas for registration, authentication and the profile."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from models.base import StrictModel
from models.identity.tables import RegistrationStatus

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class RegistrationCreate(StrictModel):
    """Sign-up form."""

    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=1, max_length=128)
    first_name: Name
    last_name: Name


class RegistrationAccepted(BaseModel):
    """202 answer to a sign-up (identical whether or not the email already has an account)."""

    registration_id: uuid.UUID
    status: RegistrationStatus
    status_url: str


class RegistrationPublic(BaseModel):
    """Status of a registration."""

    registration_id: uuid.UUID
    status: RegistrationStatus
    attempts_left: int | None = None
    resend_available_at: datetime | None = None
    expires_at: datetime | None = None


class VerifyEmailBody(StrictModel):
    """The code from the verification email."""

    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]


class EmailVerified(BaseModel):
    """Email verified: the registration token authorises the MFA setup calls."""

    registration_id: uuid.UUID
    status: RegistrationStatus
    registration_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int


class MfaSetup(BaseModel):
    """A new TOTP secret to enrol in an authenticator app."""

    secret: str
    otpauth_uri: str


class TotpCodeBody(StrictModel):
    """A 6-digit TOTP code."""

    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]


class TokenPair(BaseModel):
    """Access and refresh tokens."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int


class MfaActivated(TokenPair):
    """Registration complete: one-time recovery codes (shown once) and a first session."""

    recovery_codes: list[str]


class LoginBody(StrictModel):
    """Password first; then a TOTP or recovery code (with the password or a challenge token)."""

    email: EmailStr | None = Field(default=None, max_length=254)
    password: str | None = Field(default=None, max_length=128)
    challenge_token: str | None = Field(default=None, max_length=2048)
    totp_code: Code | None = None
    recovery_code: Code | None = None


class RefreshBody(StrictModel):
    """A refresh token to rotate."""

    refresh_token: str = Field(min_length=1, max_length=2048)


class ProfilePublic(BaseModel):
    """The caller's profile."""

    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    status: str
    mfa_enabled: bool
    created_at: datetime


class ProfileUpdate(StrictModel):
    """Only the name fields are writable."""

    first_name: Name | None = None
    last_name: Name | None = None
