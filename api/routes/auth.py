"""Registration, MFA, login, token refresh, logout and profile routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.auth.registration import RegistrationService
from api.auth.sessions import SessionService
from api.deps import AccessClaims, ClientDep, CurrentUserRow, RegistrationClaims, ServicesDep
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.identity.payloads import RegistrationState
from models.identity.schemas import (
    EmailVerified,
    LoginBody,
    MfaActivated,
    MfaSetup,
    ProfilePublic,
    ProfileUpdate,
    RefreshBody,
    RegistrationAccepted,
    RegistrationCreate,
    RegistrationPublic,
    TokenPair,
    TotpCodeBody,
    VerifyEmailBody,
)
from models.identity.tables import Registration, RegistrationStatus, User

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _status_url(registration_id: uuid.UUID) -> str:
    return f"/api/auth/registrations/{registration_id}"


@router.post("/register", status_code=status.HTTP_202_ACCEPTED)
async def register(
    body: RegistrationCreate, services: ServicesDep, client: ClientDep
) -> RegistrationAccepted:
    """Start a registration; a verification code is emailed. Same answer for a taken email."""
    registration_id = await RegistrationService(services).register(body, client)
    return RegistrationAccepted(
        registration_id=registration_id,
        status=RegistrationStatus.AWAITING_EMAIL_VERIFICATION,
        status_url=_status_url(registration_id),
    )


def _view(state: RegistrationState | Registration) -> RegistrationPublic:
    if isinstance(state, Registration):
        return RegistrationPublic(registration_id=state.id, status=RegistrationStatus(state.status))
    return RegistrationPublic(
        registration_id=state.registration_id,
        status=state.status,
        attempts_left=state.attempts_left,
        resend_available_at=state.resend_available_at,
        expires_at=state.expires_at,
    )


@router.get("/registrations/{registration_id}")
async def registration_status(
    registration_id: uuid.UUID, services: ServicesDep
) -> RegistrationPublic:
    """Status of a registration (the workflow's query while it runs)."""
    return _view(await RegistrationService(services).state(registration_id))


@router.post("/registrations/{registration_id}/verify-email")
async def verify_email(
    registration_id: uuid.UUID, body: VerifyEmailBody, services: ServicesDep
) -> EmailVerified:
    """Submit the emailed code; answers a registration token for the MFA setup."""
    reg = RegistrationService(services)
    state = await reg.verify_email(registration_id, body.code)
    registration = await reg.get(registration_id)
    assert registration.user_id is not None
    return EmailVerified(
        registration_id=registration_id,
        status=state.status,
        registration_token=reg.registration_token(registration.user_id, registration_id),
        expires_in=services.settings.registration_token_ttl_seconds,
    )


@router.post("/registrations/{registration_id}/resend-code", status_code=status.HTTP_202_ACCEPTED)
async def resend_code(registration_id: uuid.UUID, services: ServicesDep) -> RegistrationPublic:
    """Email a new code (after a cooldown); earlier codes stop working."""
    return _view(await RegistrationService(services).resend_code(registration_id))


@router.post("/mfa/setup")
async def mfa_setup(
    claims: RegistrationClaims, services: ServicesDep, client: ClientDep
) -> MfaSetup:
    """Create the TOTP secret (encrypted at rest) and its otpauth:// URI."""
    secret, uri = await RegistrationService(services).setup_mfa(claims.subject, client)
    return MfaSetup(secret=secret, otpauth_uri=uri)


@router.post("/mfa/verify")
async def mfa_verify(
    body: TotpCodeBody, claims: RegistrationClaims, services: ServicesDep, client: ClientDep
) -> MfaActivated:
    """Verify the first TOTP code: activates the user and returns recovery codes and tokens."""
    registration_id = uuid.UUID(str(claims.extra["rid"]))
    codes = await RegistrationService(services).verify_mfa(
        claims.subject, registration_id, body.code, client
    )
    pair = await SessionService(services).issue_session(claims.subject)
    return MfaActivated(recovery_codes=codes, **pair.model_dump())


@router.post("/login")
async def login(body: LoginBody, services: ServicesDep, client: ClientDep) -> TokenPair:
    """Log in with password and a TOTP or recovery code (401 mfa-required asks for the code)."""
    return await SessionService(services).login(body, client)


@router.post("/refresh")
async def refresh(body: RefreshBody, services: ServicesDep, client: ClientDep) -> TokenPair:
    """Exchange a refresh token for a new pair; reuse of an old one revokes the session."""
    return await SessionService(services).refresh(body.refresh_token, client)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(claims: AccessClaims, services: ServicesDep, client: ClientDep) -> Response:
    """End the current session (its refresh tokens and access tokens)."""
    await SessionService(services).logout(claims, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _profile(user: User) -> ProfilePublic:
    return ProfilePublic.model_validate(user, from_attributes=True)


@router.get("/profile")
async def get_profile(user: CurrentUserRow) -> ProfilePublic:
    """The caller's profile."""
    return _profile(user)


@router.patch("/profile")
async def update_profile(
    body: ProfileUpdate, user: CurrentUserRow, services: ServicesDep, client: ClientDep
) -> ProfilePublic:
    """Change first or last name (nothing else is writable)."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    async with transaction(services.sessions) as session:
        row = await session.get(User, user.id, with_for_update=True)
        assert row is not None
        for field, value in changes.items():
            setattr(row, field, value)
        row.updated_at = utcnow()
        await record_audit(
            session,
            "profile.updated",
            actor_user_id=user.id,
            client=client,
            details={"fields": sorted(changes)},
        )
    return _profile(row)
