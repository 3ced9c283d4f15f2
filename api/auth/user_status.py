"""Disable and re-enable a customer: the status lives in PostgreSQL, and a disabled user's
access tokens are refused at once through the same Redis lookup that checks revoked sessions.

Access tokens are verified without a database read, so a status change must go through
`set_user_status`: it revokes the refresh tokens (no new access tokens) and denies the user's
live access tokens in Redis for as long as one can still be valid.
"""

from __future__ import annotations

import json
import uuid

from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import col

from core import errors
from core.db import SessionFactory, transaction
from core.settings import Settings
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import RefreshToken, User, UserStatus

REVOKED_FAMILY_KEY = "auth:revoked-family:{}"
BLOCKED_USER_KEY = "auth:blocked-user:{}"
# Pub/sub: every API process closes the WebSockets of a revoked session or disabled user at
# once (`api.ws`); the Redis keys above stay the source of truth (a missed message is caught
# by the sockets' periodic re-check).
REVOCATIONS_CHANNEL = "auth:revocations"


def revocation_message(*, session: uuid.UUID | None = None, user: uuid.UUID | None = None) -> str:
    """The pub/sub message naming a revoked session (refresh family) or a disabled user."""
    return json.dumps(
        {"sid": str(session) if session else None, "user": str(user) if user else None}
    )


def deny_ttl_seconds(settings: Settings) -> int:
    """How long a denial must last: the longest an access token issued before it stays valid."""
    return settings.access_token_ttl_seconds + 60


async def set_user_status(
    sessions: SessionFactory,
    redis: Redis,
    settings: Settings,
    user_id: uuid.UUID,
    status: UserStatus,
    *,
    reason: str,
    actor: str,
) -> User:
    """Disable (every session ends at once) or re-enable an active customer; audited with the
    actor and the reason. Setting the status a user already has changes nothing."""
    if status == UserStatus.PENDING:
        raise ValueError("a user cannot be set back to pending")
    async with transaction(sessions) as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None or user.status == UserStatus.PENDING:
            raise errors.NotFound("no such active or disabled user")
        if user.status == status:
            return user
        previous, user.status = user.status, status
        user.updated_at = utcnow()
        families: list[uuid.UUID] = []
        if status == UserStatus.DISABLED:
            revoked = await session.execute(
                update(RefreshToken)
                .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None))
                .values(revoked_at=utcnow())
                .returning(col(RefreshToken.family_id))
            )
            families = sorted(set(revoked.scalars()))
        await record_audit(
            session,
            f"user.{'disabled' if status == UserStatus.DISABLED else 'enabled'}",
            subject=str(user_id),
            client=actor,
            details={"reason": reason, "from": str(previous)},
        )
    key = BLOCKED_USER_KEY.format(user_id)
    if status == UserStatus.DISABLED:
        # The sessions' own denials too: re-enabling the user must not revive them.
        ttl = deny_ttl_seconds(settings)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(key, "1", ex=ttl)
            for family in families:
                pipe.set(REVOKED_FAMILY_KEY.format(family), "1", ex=ttl)
            pipe.publish(REVOCATIONS_CHANNEL, revocation_message(user=user_id))
            await pipe.execute()
    else:
        await redis.delete(key)
    return user
