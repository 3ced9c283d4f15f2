"""Registration, MFA, login, token refresh, logout and profile routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import bindparam, select
from sqlmodel import col

from api import read_views
from api.auth import errors as auth_errors
from api.auth.registration import RegistrationService
from api.auth.sessions import SessionService
from api.deps import AccessClaims, ClientDep, CurrentUserRow, RegistrationClaims, ServicesDep
from api.fast_reads import ReadQuery, as_text
from api.openapi_problems import problems
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
from models.identity.tables import Registration, RegistrationStatus, User, UserStatus
from models.text import scrub

router = APIRouter(prefix="/api/auth", tags=["auth"])


async def _user_agent(request: Request) -> str:
    """The User-Agent, only recorded (as a device digest and a label), so scrubbed rather than
    refused (decision 33); read from the request, not declared as a text parameter."""
    return scrub(request.headers.get("user-agent", ""), 1000)


UserAgent = Annotated[str, Depends(_user_agent)]


def _status_url(registration_id: uuid.UUID) -> str:
    return f"/api/auth/registrations/{registration_id}"


@router.post("/register", status_code=status.HTTP_202_ACCEPTED, responses=problems(400))
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


@router.post(
    "/registrations/{registration_id}/verify-email", responses=problems(400, 409, 410, 429)
)
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


@router.post(
    "/registrations/{registration_id}/resend-code",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 410, 429),
)
async def resend_code(registration_id: uuid.UUID, services: ServicesDep) -> RegistrationPublic:
    """Email a new code (after a cooldown); earlier codes stop working."""
    return _view(await RegistrationService(services).resend_code(registration_id))


@router.post("/mfa/setup", responses=problems(409))
async def mfa_setup(
    claims: RegistrationClaims, services: ServicesDep, client: ClientDep
) -> MfaSetup:
    """Create the TOTP secret (encrypted at rest) and its otpauth:// URI."""
    secret, uri = await RegistrationService(services).setup_mfa(claims.subject, client)
    return MfaSetup(secret=secret, otpauth_uri=uri)


@router.post("/mfa/verify", responses=problems(409, 429))
async def mfa_verify(
    body: TotpCodeBody,
    claims: RegistrationClaims,
    services: ServicesDep,
    client: ClientDep,
    user_agent: UserAgent,
) -> MfaActivated:
    """Verify the first TOTP code: activates the user and returns recovery codes and tokens."""
    registration_id = uuid.UUID(str(claims.extra["rid"]))
    codes = await RegistrationService(services).verify_mfa(
        claims.subject, registration_id, body.code, client
    )
    # The registering device is the user's first known device (no notice for it).
    pair = await SessionService(services).issue_session(claims.subject, device=(user_agent, client))
    return MfaActivated(recovery_codes=codes, **pair.model_dump())


@router.post("/login", responses=problems(400, 401, 403, 429))
async def login(
    body: LoginBody, services: ServicesDep, client: ClientDep, user_agent: UserAgent
) -> TokenPair:
    """Log in with password and a TOTP or recovery code (401 mfa-required asks for the code)."""
    return await SessionService(services).login(body, client, user_agent)


@router.post("/refresh", responses=problems(401, 429))
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


_PROFILE = ReadQuery(
    select(
        as_text(col(User.id)),
        col(User.email),
        col(User.first_name),
        col(User.last_name),
        col(User.status),
        col(User.mfa_enabled),
        col(User.created_at),
    ).where(col(User.id) == bindparam("user_id"))
)


@router.get("/profile", response_model=ProfilePublic)
async def get_profile(claims: AccessClaims, services: ServicesDep) -> Response:
    """The caller's profile."""
    rows = await _PROFILE.fetch(services.read_pool, user_id=claims.subject)
    # The row's status is checked again, as `CurrentUserRow` does for the other profile routes.
    if not rows or rows[0]["status"] != UserStatus.ACTIVE:
        raise auth_errors.InvalidToken("account is not active")
    return read_views.json_response(read_views.profile(rows[0]))


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
