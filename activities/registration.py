"""Registration activities: send and check email codes, activate the user, close abandoned sign-ups.

Each is one transaction and idempotent: a retry after success changes nothing more.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger import open_account
from core.crypto import Crypto, constant_time_equal
from core.db import SessionFactory, transaction
from core.email import EmailBackend, OutgoingEmail
from models.base import utcnow
from models.identity.payloads import (
    ActivateInput,
    CheckCodeInput,
    CloseRegistrationInput,
    CodeCheck,
    SendCodeInput,
)
from models.identity.tables import (
    EmailVerification,
    RecoveryCode,
    Registration,
    RegistrationStatus,
    User,
    UserStatus,
)
from models.ledger.payloads import OpenAccountInput
from models.ledger.tables import AccountType


def verification_code(crypto: Crypto, registration_id: str, sequence: int) -> str:
    """The nth code of a registration: derived from the secret key, so every retry resends
    the same code and the clear code is never stored or passed through Temporal."""
    digest = crypto.digest("email-code", registration_id, str(sequence))
    return f"{int(hashlib.sha256(digest.encode()).hexdigest(), 16) % 1_000_000:06d}"


def code_digest(crypto: Crypto, registration_id: str, code: str) -> str:
    """Keyed digest of a submitted code (what the API sends to the workflow)."""
    return crypto.digest("email-code-check", registration_id, code.strip())


class RegistrationActivities:
    """Activities of RegistrationWorkflow, bound to their dependencies."""

    def __init__(
        self,
        sessions: SessionFactory,
        crypto: Crypto,
        email: EmailBackend,
        *,
        default_currency: str = "EUR",
    ) -> None:
        self._sessions = sessions
        self._crypto = crypto
        self._email = email
        self._default_currency = default_currency

    @activity.defn(name="registration.send_verification_code")
    async def send_verification_code(self, inp: SendCodeInput) -> None:
        """Record the nth code's digest and expiry, then email the code to the user."""
        rid = str(inp.registration_id)
        code = verification_code(self._crypto, rid, inp.sequence)
        async with transaction(self._sessions) as session:
            user = (
                await session.execute(
                    select(User)
                    .join(Registration, col(Registration.user_id) == User.id)
                    .where(col(Registration.id) == inp.registration_id)
                )
            ).scalar_one_or_none()
            if user is None:
                raise ApplicationError("registration has no pending user", non_retryable=True)
            await session.execute(
                insert(EmailVerification)
                .values(
                    registration_id=inp.registration_id,
                    send_key=f"{rid}:{inp.sequence}",
                    code_digest=code_digest(self._crypto, rid, code),
                    expires_at=utcnow() + timedelta(seconds=inp.ttl_seconds),
                )
                .on_conflict_do_nothing(index_elements=["send_key"])
            )
            to, first_name = user.email, user.first_name
        await self._email.send(
            OutgoingEmail(
                to=to,
                subject="Your VortexCore verification code",
                body=f"Hello {first_name},\n\nYour verification code is {code}.\n"
                f"It expires in {inp.ttl_seconds // 60} minutes.\n",
            )
        )
        async with transaction(self._sessions) as session:
            await session.execute(
                update(EmailVerification)
                .where(col(EmailVerification.send_key) == f"{rid}:{inp.sequence}")
                .values(sent_at=utcnow())
            )

    @activity.defn(name="registration.check_email_code")
    async def check_email_code(self, inp: CheckCodeInput) -> CodeCheck:
        """Compare a submitted digest with the latest code; on a match mark the email verified."""
        async with transaction(self._sessions) as session:
            registration = await session.get(
                Registration, inp.registration_id, with_for_update=True
            )
            if registration is None:
                raise ApplicationError("unknown registration", non_retryable=True)
            if registration.status != RegistrationStatus.AWAITING_EMAIL_VERIFICATION:
                return CodeCheck(outcome="ok")  # a retry after the match committed
            sent = (
                await session.execute(
                    select(EmailVerification).where(
                        col(EmailVerification.send_key) == f"{inp.registration_id}:{inp.sequence}"
                    )
                )
            ).scalar_one_or_none()
            if sent is None or not constant_time_equal(sent.code_digest, inp.code_digest):
                return CodeCheck(outcome="wrong")
            if sent.expires_at <= utcnow():
                return CodeCheck(outcome="expired")
            registration.status = RegistrationStatus.AWAITING_MFA
            registration.updated_at = utcnow()
            return CodeCheck(outcome="ok")

    @activity.defn(name="registration.activate_user")
    async def activate_user(self, inp: ActivateInput) -> None:
        """Activate the user, enable MFA, store the recovery code digests and open the user's
        default account, all in one transaction."""
        async with transaction(self._sessions) as session:
            registration = await session.get(
                Registration, inp.registration_id, with_for_update=True
            )
            if registration is None or registration.user_id is None:
                raise ApplicationError("registration has no user", non_retryable=True)
            if registration.status == RegistrationStatus.COMPLETED:
                return
            user = await session.get(User, registration.user_id, with_for_update=True)
            if user is None or user.mfa_secret_encrypted is None:
                raise ApplicationError(
                    "MFA has not been set up", type="MfaNotSetUp", non_retryable=True
                )
            now = utcnow()
            user.status, user.mfa_enabled = UserStatus.ACTIVE, True
            user.activated_at = user.updated_at = now
            registration.status = RegistrationStatus.COMPLETED
            registration.completed_at = registration.updated_at = now
            await session.execute(
                insert(RecoveryCode)
                .values([{"user_id": user.id, "code_digest": d} for d in inp.recovery_code_digests])
                .on_conflict_do_nothing(index_elements=["code_digest"])
            )
            await open_account(
                session,
                OpenAccountInput(
                    idempotency_key=f"default-account:{user.id}",
                    owner_user_id=user.id,
                    currency=self._default_currency,
                    type=AccountType.CHECKING,
                    name="Main account",
                ),
            )

    @activity.defn(name="registration.close_registration")
    async def close_registration(self, inp: CloseRegistrationInput) -> None:
        """Mark a registration expired or failed and delete its pending user (freeing the email)."""
        async with transaction(self._sessions) as session:
            await close_pending_registration(session, inp)


async def close_pending_registration(session: AsyncSession, inp: CloseRegistrationInput) -> bool:
    """Mark a registration expired or failed and delete its pending user (freeing the email),
    in the caller's transaction. False when it was already final (or is unknown)."""
    registration = await session.get(Registration, inp.registration_id, with_for_update=True)
    if registration is None or RegistrationStatus(registration.status).is_terminal:
        return False
    user_id = registration.user_id
    now = utcnow()
    registration.status, registration.user_id = inp.status, None
    registration.completed_at = registration.updated_at = now
    await session.flush()
    if user_id is not None:
        await session.execute(
            delete(User).where(col(User.id) == user_id, col(User.status) == UserStatus.PENDING)
        )
    return True
