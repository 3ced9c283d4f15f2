"""Login with MFA, rotating refresh tokens with reuse detection, logout."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import errors as auth_errors
from api.auth import totp
from api.auth.devices import note_device, record_session
from api.auth.registration import RegistrationService, normalize_email, recovery_code_digest
from api.auth.tokens import TokenClaims
from api.auth.user_status import (
    REVOCATIONS_CHANNEL,
    REVOKED_FAMILY_KEY,
    deny_ttl_seconds,
    revocation_message,
)
from api.services import Services
from api.staff import staff_roles
from core import errors
from core.crypto import hash_password, is_legacy_password_hash, verify_password
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.identity.schemas import LoginBody, TokenPair
from models.identity.tables import (
    RecoveryCode,
    RefreshToken,
    Registration,
    RegistrationStatus,
    User,
    UserStatus,
)
from models.security.tables import LoginSession

# A challenge token opens one session: its jti is consumed (SET NX, for its remaining lifetime).
USED_CHALLENGE_KEY = "auth:used-challenge:{}"
CHALLENGE_USED = "this challenge token has already been used; log in with your password again"


def token_digest(token: str) -> str:
    """Stored form of a refresh token (it is already high-entropy: a plain hash suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    """Use cases behind /api/auth/login, /refresh and /logout."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def login(self, body: LoginBody, client: str, user_agent: str = "") -> TokenPair:
        """Password, then a TOTP or recovery code; a missing code answers an MFA challenge.

        While the client address is locked out, a password alone is refused (429), but a
        password with a correct second factor still logs in (the account's limit applies);
        any failure then answers the same 429, so the lock leaks nothing about the password."""
        client_lock = await self.s.throttle.client_lock(client)
        user, challenge_claims = await self._first_factor(body, client, client_lock)
        account = self._account_key(user.email)
        if not (body.totp_code or body.recovery_code):
            # A challenge is issued only for the password, never renewed by a challenge.
            challenge = (
                body.challenge_token
                or self.s.tokens.issue(
                    user.id, "mfa_challenge", self.s.settings.mfa_challenge_ttl_seconds
                )[0]
            )
            raise auth_errors.MfaRequired(
                "password accepted; send a totp_code or recovery_code with this challenge_token",
                challenge_token=challenge,
            )
        await self.s.throttle.ensure_allowed(account, None)
        async with transaction(self.s.sessions) as session:
            accepted = await self._second_factor(session, user, body)
            await record_audit(
                session,
                "login.mfa",
                actor_user_id=user.id,
                client=client,
                details={"accepted": accepted, "method": "totp" if body.totp_code else "recovery"},
            )
        if not accepted:
            await self.s.throttle.record_failure(account, client)
            if client_lock is not None and challenge_claims is None:
                raise client_lock
            raise auth_errors.InvalidMfaCode()
        if challenge_claims is not None:
            await self._consume_challenge(challenge_claims)
        await self.s.throttle.record_success(account)
        return await self.issue_session(user.id, device=(user_agent, client), notify_new=True)

    async def _first_factor(
        self, body: LoginBody, client: str, client_lock: auth_errors.TooManyAttempts | None
    ) -> tuple[User, TokenClaims | None]:
        if body.challenge_token:
            claims = self.s.tokens.verify(body.challenge_token, "mfa_challenge")
            if await self.s.redis.exists(USED_CHALLENGE_KEY.format(claims.token_id)):
                raise auth_errors.InvalidToken(CHALLENGE_USED)
            async with self.s.sessions() as session:
                user = await session.get(User, claims.subject)
            if user is None or user.status != UserStatus.ACTIVE:
                raise auth_errors.InvalidToken("challenge no longer valid")
            return user, claims
        if not body.email or body.password is None:
            raise errors.AppError("email and password (or a challenge_token) are required")
        email = normalize_email(body.email)
        account = self._account_key(email)
        if client_lock is not None and not (body.totp_code or body.recovery_code):
            raise client_lock
        await self.s.throttle.ensure_allowed(account, None)
        async with self.s.sessions() as session:
            user = await session.scalar(select(User).where(col(User.email) == email))
        ok = await asyncio.to_thread(
            verify_password, user.password_hash if user else None, body.password
        )
        if not ok or user is None or user.status == UserStatus.DISABLED:
            await self.s.throttle.record_failure(account, client)
            async with transaction(self.s.sessions) as session:
                await record_audit(
                    session, "login.failed", client=client, actor_user_id=user.id if user else None
                )
            raise client_lock or auth_errors.InvalidCredentials()
        if is_legacy_password_hash(user.password_hash):
            await self._rehash(user, body.password, client)
        if user.status == UserStatus.PENDING:
            if client_lock is not None:
                raise client_lock  # what remains to do tells that the password was right
            await self._explain_pending(user)
        return user, None

    async def _rehash(self, user: User, password: str, client: str) -> None:
        """A migrated user's first right password: replace the legacy bcrypt hash by argon2id
        (only if it is still that hash: of two concurrent logins, one rehashes)."""
        new_hash = await asyncio.to_thread(hash_password, password)
        async with transaction(self.s.sessions) as session:
            changed = await session.execute(
                update(User)
                .where(col(User.id) == user.id, col(User.password_hash) == user.password_hash)
                .values(password_hash=new_hash, updated_at=utcnow())
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                await record_audit(
                    session, "password.rehashed", actor_user_id=user.id, client=client
                )
        user.password_hash = new_hash

    async def _consume_challenge(self, claims: TokenClaims) -> None:
        """Mark a challenge token used, atomically: of two logins with it, one gets a session.

        Only a correct second factor consumes it; a wrong code leaves it usable (the throttle
        bounds the guesses), so a typo does not send the customer back to the password."""
        ttl = max(claims.expires_at - int(time.time()), 1)
        key = USED_CHALLENGE_KEY.format(claims.token_id)
        if not await self.s.redis.set(key, "1", nx=True, ex=ttl):
            raise auth_errors.InvalidToken(CHALLENGE_USED)

    async def _explain_pending(self, user: User) -> None:
        """A pending user with the right password learns what step remains."""
        async with self.s.sessions() as session:
            registration = await session.scalar(
                select(Registration).where(col(Registration.user_id) == user.id)
            )
        if registration is not None and registration.status == RegistrationStatus.AWAITING_MFA:
            token = RegistrationService(self.s).registration_token(user.id, registration.id)
            raise auth_errors.MfaSetupRequired(
                registration_id=str(registration.id), registration_token=token
            )
        raise auth_errors.RegistrationIncomplete(
            registration_id=str(registration.id) if registration else None
        )

    async def _second_factor(self, session: AsyncSession, user: User, body: LoginBody) -> bool:
        if body.totp_code:
            return await totp.consume_totp(session, self.s.crypto, user, body.totp_code)
        assert body.recovery_code is not None
        used = await session.execute(
            update(RecoveryCode)
            .where(
                col(RecoveryCode.user_id) == user.id,
                col(RecoveryCode.code_digest) == recovery_code_digest(self.s, body.recovery_code),
                col(RecoveryCode.used_at).is_(None),
            )
            .values(used_at=utcnow())
        )
        return bool(used.rowcount)  # type: ignore[attr-defined]

    async def issue_session(
        self,
        user_id: uuid.UUID,
        family: uuid.UUID | None = None,
        *,
        device: tuple[str, str] | None = None,
        notify_new: bool = False,
    ) -> TokenPair:
        """A new access token and refresh token (in a new or the given rotation family); a
        `device` (user agent, client) is remembered, and when `notify_new` a device not seen
        before raises a security notice in the same transaction."""
        family = family or uuid.uuid4()
        async with transaction(self.s.sessions) as session:
            pair = await self._issue_in(session, user_id, family)
            if device is not None:
                agent, client = device
                await note_device(session, self.s.crypto, user_id, agent, client, notify=notify_new)
                await record_session(session, user_id, family, agent, client)
        return pair

    async def _issue_in(
        self, session: AsyncSession, user_id: uuid.UUID, family: uuid.UUID
    ) -> TokenPair:
        st = self.s.settings
        # Staff roles ride in the access token (the staff routes re-check them in PostgreSQL).
        roles = await staff_roles(session, user_id)
        # Staff tokens open the staff routes: they live shorter (a stolen one is worth less).
        ttl = st.staff_access_token_ttl_seconds if roles else st.access_token_ttl_seconds
        access, _ = self.s.tokens.issue(user_id, "access", ttl, sid=str(family), roles=roles)
        refresh, jti = self.s.tokens.issue(
            user_id, "refresh", st.refresh_token_ttl_seconds, sid=str(family)
        )
        session.add(
            RefreshToken(
                id=jti,
                family_id=family,
                user_id=user_id,
                token_digest=token_digest(refresh),
                expires_at=utcnow() + timedelta(seconds=st.refresh_token_ttl_seconds),
            )
        )
        await session.execute(
            update(LoginSession)
            .where(col(LoginSession.family_id) == family)
            .values(last_used_at=utcnow())
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)

    async def refresh(self, token: str, client: str) -> TokenPair:
        """Rotate a refresh token; presenting a used one revokes its whole family."""
        claims = self.s.tokens.verify(token, "refresh")
        reused_family: uuid.UUID | None = None
        async with transaction(self.s.sessions) as session:
            row = await session.get(RefreshToken, claims.token_id, with_for_update=True)
            if row is None or row.token_digest != token_digest(token):
                raise auth_errors.InvalidToken("unknown refresh token")
            if row.used_at is not None or row.revoked_at is not None:
                reused_family = row.family_id
                await self._revoke_family(session, row.family_id)
                await record_audit(
                    session,
                    "refresh.reuse_detected",
                    actor_user_id=row.user_id,
                    client=client,
                    subject=str(row.family_id),
                )
            else:
                user = await session.get(User, row.user_id)
                if user is None or user.status != UserStatus.ACTIVE:
                    raise auth_errors.InvalidToken("account is not active")
                row.used_at = utcnow()
                pair = await self._issue_in(session, row.user_id, row.family_id)
        if reused_family is not None:
            await self._deny_family(reused_family)
            raise auth_errors.InvalidToken(
                "refresh token reuse detected; all sessions of it revoked"
            )
        return pair

    async def logout(self, claims: TokenClaims, client: str) -> None:
        """End the caller's session: revoke its refresh family and deny its access token."""
        family = uuid.UUID(str(claims.extra.get("sid")))
        async with transaction(self.s.sessions) as session:
            await self._revoke_family(session, family)
            await record_audit(session, "logout", actor_user_id=claims.subject, client=client)
        await self._deny_family(family)

    async def revoke_session(self, user_id: uuid.UUID, family: uuid.UUID, client: str) -> bool:
        """End one of the user's sessions (from another device); False when it is not theirs
        or already ended."""
        async with transaction(self.s.sessions) as session:
            owned = await session.scalar(
                select(func.count())
                .select_from(RefreshToken)
                .where(
                    col(RefreshToken.family_id) == family,
                    col(RefreshToken.user_id) == user_id,
                    col(RefreshToken.revoked_at).is_(None),
                )
            )
            if not owned:
                return False
            await self._revoke_family(session, family)
            await record_audit(
                session,
                "session.revoked",
                actor_user_id=user_id,
                subject=str(family),
                client=client,
            )
        await self._deny_family(family)
        return True

    async def _revoke_family(self, session: AsyncSession, family: uuid.UUID) -> None:
        await session.execute(
            update(RefreshToken)
            .where(col(RefreshToken.family_id) == family, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=utcnow())
        )

    async def _deny_family(self, family: uuid.UUID) -> None:
        """Access tokens of a revoked family stop working at once (they are short-lived)."""
        ttl = deny_ttl_seconds(self.s.settings)
        async with self.s.redis.pipeline(transaction=False) as pipe:
            pipe.set(REVOKED_FAMILY_KEY.format(family), "1", ex=ttl)
            # Open WebSockets of the session close at once, in every API process.
            pipe.publish(REVOCATIONS_CHANNEL, revocation_message(session=family))
            await pipe.execute()

    def _account_key(self, email: str) -> str:
        return "email:" + self.s.crypto.digest("throttle", email)[:32]
