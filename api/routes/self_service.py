"""Customer self-service: the caller's login sessions, and freezing outbound payments.

A self-freeze is lifted by the customer with a fresh TOTP code; a fraud freeze (from a fraud
report) only by staff review (`POST /api/security/incidents/{id}/review`).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from sqlalchemy import select
from sqlmodel import col

from activities.security.freezes import active_freezes, freeze_account, lift_freeze
from api.auth import errors as auth_errors
from api.auth.sessions import SessionService
from api.auth.totp import consume_totp, user_key
from api.deps import ClientDep, CurrentUser, CurrentUserRow, ServicesDep
from api.ownership import owned_account
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.identity.tables import RefreshToken
from models.security.schemas import (
    FreezeBody,
    FreezePublic,
    SessionList,
    SessionPublic,
    UnfreezeBody,
)
from models.security.tables import FreezeKind, LoginSession

router = APIRouter(tags=["self-service"])


@router.get("/api/auth/sessions")
async def list_sessions(user: CurrentUser, services: ServicesDep) -> SessionList:
    """The caller's live login sessions: device, address, opened and last used."""
    live = (
        select(col(RefreshToken.family_id))
        .where(col(RefreshToken.user_id) == user.id, col(RefreshToken.revoked_at).is_(None))
        .distinct()
    )
    async with services.reads() as session:
        rows = await session.execute(
            select(LoginSession)
            .where(col(LoginSession.user_id) == user.id, col(LoginSession.family_id).in_(live))
            .order_by(col(LoginSession.last_used_at).desc())
            .limit(100)
        )
    return SessionList(
        items=[
            SessionPublic(
                id=s.family_id,
                device=s.device,
                client=s.client,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                current=str(s.family_id) == user.session_id,
            )
            for s in rows.scalars()
        ]
    )


@router.delete("/api/auth/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(
    session_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> Response:
    """End one of the caller's sessions (its refresh and access tokens stop working)."""
    if not await SessionService(services).revoke_session(user.id, session_id, client):
        raise errors.NotFound("unknown session")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _freezes(services: ServicesDep, account_id: uuid.UUID) -> FreezePublic:
    async with services.reads() as session:
        kinds = await active_freezes(session, account_id)
    return FreezePublic(account_id=account_id, frozen=bool(kinds), kinds=kinds)


@router.get("/api/security/freeze/{account_id}")
async def get_freeze(
    account_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> FreezePublic:
    """Whether outbound payments from one of the caller's accounts are frozen, and by whom."""
    async with services.reads() as session:
        await owned_account(session, user.id, account_id)
    return await _freezes(services, account_id)


@router.post("/api/security/freeze")
async def freeze(
    body: FreezeBody, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> FreezePublic:
    """Freeze outbound payments from one of the caller's accounts (idempotent)."""
    async with transaction(services.sessions) as session:
        await owned_account(session, user.id, body.account_id, lock=True)
        if await freeze_account(session, user.id, body.account_id, FreezeKind.SELF):
            await record_audit(
                session,
                "account.frozen",
                actor_user_id=user.id,
                subject=str(body.account_id),
                client=client,
                details={"kind": FreezeKind.SELF},
            )
    return await _freezes(services, body.account_id)


@router.post("/api/security/unfreeze")
async def unfreeze(
    body: UnfreezeBody, user: CurrentUserRow, services: ServicesDep, client: ClientDep
) -> FreezePublic:
    """Lift the caller's own freeze with a fresh TOTP code (a fraud freeze stays)."""
    throttle_key = user_key(user.id)
    await services.throttle.ensure_allowed(throttle_key, None)
    async with transaction(services.sessions) as session:
        await owned_account(session, user.id, body.account_id, lock=True)
        accepted = await consume_totp(session, services.crypto, user, body.totp_code)
        lifted = accepted and await lift_freeze(session, body.account_id, FreezeKind.SELF, user.id)
        await record_audit(
            session,
            "account.unfrozen" if lifted else "account.unfreeze_refused",
            actor_user_id=user.id,
            subject=str(body.account_id),
            client=client,
            details={"code_accepted": accepted},
        )
    if not accepted:
        await services.throttle.record_failure(throttle_key, client)
        raise auth_errors.InvalidMfaCode()
    return await _freezes(services, body.account_id)
