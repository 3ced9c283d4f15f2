"""Identity errors: tokens, credentials, MFA, registration and throttling."""

from __future__ import annotations

from core.errors import AppError


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


class WeakPassword(AppError):
    status, type, title = 422, "weak-password", "Password is too weak"


class InvalidVerificationCode(AppError):
    status, type, title = 400, "invalid-verification-code", "Invalid verification code"


class RegistrationFailed(AppError):
    status, type, title = 410, "registration-failed", "Registration failed"


class VerificationCodeExpired(AppError):
    status, type, title = 400, "verification-code-expired", "Verification code expired"


class MfaSetupRequired(AppError):
    status, type, title = 403, "mfa-setup-required", "Finish MFA setup to complete registration"


class RegistrationIncomplete(AppError):
    status, type, title = 403, "registration-incomplete", "Verify your email first"
