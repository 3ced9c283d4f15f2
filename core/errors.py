"""Domain errors carrying their HTTP status and a stable problem type (RFC 9457)."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base error: rendered as application/problem+json by the API."""

    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions


class NotFound(AppError):
    status, type, title = 404, "not-found", "Not found"


class Unauthorized(AppError):
    status, type, title = 401, "unauthorized", "Authentication required"


class InvalidToken(AppError):
    status, type, title = 401, "invalid-token", "Invalid or expired token"


class InvalidCredentials(AppError):
    status, type, title = 401, "invalid-credentials", "Invalid email or password"


class MfaRequired(AppError):
    status, type, title = 401, "mfa-required", "A TOTP or recovery code is required"


class InvalidMfaCode(AppError):
    status, type, title = 401, "invalid-mfa-code", "Invalid, expired or already used code"


class TooManyAttempts(AppError):
    status, type, title = 429, "too-many-attempts", "Too many attempts; try again later"


class Conflict(AppError):
    status, type, title = 409, "conflict", "Conflict with the current state"


class WeakPassword(AppError):
    status, type, title = 422, "weak-password", "Password is too weak"


class InvalidState(AppError):
    status, type, title = 409, "invalid-state", "Operation not allowed in the current state"


class InvalidVerificationCode(AppError):
    status, type, title = 400, "invalid-verification-code", "Invalid verification code"


class ServiceUnavailable(AppError):
    status, type, title = 503, "service-unavailable", "A backing service is unavailable"


class RegistrationFailed(AppError):
    status, type, title = 410, "registration-failed", "Registration failed"


class VerificationCodeExpired(AppError):
    status, type, title = 400, "verification-code-expired", "Verification code expired"


class MfaSetupRequired(AppError):
    status, type, title = 403, "mfa-setup-required", "Finish MFA setup to complete registration"


class RegistrationIncomplete(AppError):
    status, type, title = 403, "registration-incomplete", "Verify your email first"
