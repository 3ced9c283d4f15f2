"""API request and response schemas for registration, authentication and the profile."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from core.passwords import MAX_LENGTH as PASSWORD_MAX_LENGTH
from core.passwords import RULE as PASSWORD_RULE
from models.base import StrictModel
from models.identity.tables import RegistrationStatus
from models.text import EMAIL_IDENTITY, SINGLE_LINE, utf8_max

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SINGLE_LINE
]


Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), SINGLE_LINE
]


Email = Annotated[EmailStr, Field(max_length=254), EMAIL_IDENTITY, utf8_max(254)]
"""An address: NFKC + casefold, at most 254 octets (RFC 5321)."""


SixDigits = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$"), SINGLE_LINE
]


Token = Annotated[str, StringConstraints(min_length=1, max_length=2048), SINGLE_LINE]


class RegistrationCreate(StrictModel):
    """Sign-up form."""

    email: Email
    password: str = Field(
        min_length=1,
        max_length=PASSWORD_MAX_LENGTH,
        description=PASSWORD_RULE,
    )
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

    code: SixDigits


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

    code: SixDigits


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

    email: Email | None = None
    password: str | None = Field(
        default=None, max_length=PASSWORD_MAX_LENGTH, description=PASSWORD_RULE
    )
    challenge_token: Token | None = None
    totp_code: Code | None = None
    recovery_code: Code | None = None


class RefreshBody(StrictModel):
    """A refresh token to rotate."""

    refresh_token: Token


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
