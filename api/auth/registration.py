"""Registration use cases: start the workflow, relay codes as digests, set up and verify MFA."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from email_validator import validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.migration.users import activate_migrated_user
from activities.registration import code_digest
from api.auth import errors as auth_errors
from api.auth import totp
from api.auth.decoys import DecoyRegistrations
from api.services import Services
from core import errors
from core.crypto import hash_password
from core.db import transaction
from core.passwords import password_problems
from models.audit import record_audit
from models.identity.payloads import (
    CompleteMfaInput,
    RegistrationInput,
    RegistrationResult,
    RegistrationState,
    VerifyEmailInput,
)
from models.identity.schemas import RegistrationCreate
from models.identity.tables import Registration, RegistrationStatus, User, UserStatus
from models.text import email_identity
from temporal import search_attributes
from temporal.ids import registration_workflow_id
from workflows.registration import RegistrationWorkflow

T = TypeVar("T")
RECOVERY_CODE_GROUPS = 4

_UPDATE_ERRORS: dict[str, type[errors.AppError]] = {
    "InvalidVerificationCode": auth_errors.InvalidVerificationCode,
    "VerificationCodeExpired": auth_errors.VerificationCodeExpired,
    "TooManyAttempts": auth_errors.RegistrationFailed,
    "ResendCooldown": auth_errors.TooManyAttempts,
    "InvalidRegistrationState": errors.InvalidState,
    "MfaNotSetUp": errors.InvalidState,
}


def normalize_email(raw: str) -> str:
    """Canonical form used for uniqueness and lookups (NFKC + casefold, `models.text`)."""
    try:
        return email_identity(validate_email(raw, check_deliverability=False).normalized)
    except ValueError as exc:  # EmailNotValidError is a ValueError
        raise errors.AppError("this is not a valid email address") from exc


def new_recovery_codes(count: int) -> list[str]:
    """Human-friendly one-time codes (80 bits each), e.g. `ab3d-9fke-...`."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join(
            "".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(RECOVERY_CODE_GROUPS)
        )
        for _ in range(count)
    ]


def recovery_code_digest(services: Services, code: str) -> str:
    """Keyed digest of a recovery code (what is stored)."""
    return services.crypto.digest("recovery-code", code.strip().lower().replace(" ", ""))


class RegistrationService:
    """Use cases behind /api/auth/register, /registrations and /mfa."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self._decoys = DecoyRegistrations(services.redis, services.settings)

    async def register(self, body: RegistrationCreate, client: str) -> uuid.UUID:
        """Create a pending user and start its RegistrationWorkflow; returns the registration id.

        An email that already has an account gets the same answer and nothing is created.
        """
        email = normalize_email(body.email)
        reasons = password_problems(
            body.password, user_inputs=[email, email.split("@")[0], body.first_name, body.last_name]
        )
        if reasons:
            raise auth_errors.WeakPassword(
                "password is too weak: " + "; ".join(reasons), reasons=reasons
            )
        password_hash = await asyncio.to_thread(hash_password, body.password)
        registration_id, user_id = uuid.uuid4(), uuid.uuid4()
        try:
            async with transaction(self.s.sessions) as session:
                taken = await session.scalar(
                    select(func.count()).select_from(User).where(func.lower(User.email) == email)
                )
                if taken:
                    await record_audit(session, "registration.email_taken", client=client)
                    await self._decoys.create(registration_id)
                    return registration_id
                session.add(
                    User(
                        id=user_id,
                        email=email,
                        first_name=body.first_name,
                        last_name=body.last_name,
                        password_hash=password_hash,
                    )
                )
                await session.flush()
                session.add(Registration(id=registration_id, user_id=user_id))
                await record_audit(
                    session,
                    "registration.started",
                    actor_user_id=user_id,
                    subject=str(registration_id),
                    client=client,
                )
        except IntegrityError:  # a concurrent sign-up won the email: same answer
            await self._decoys.create(registration_id)
            return registration_id
        try:
            await self._start_workflow(registration_id, user_id)
        except Exception:
            await self._discard(registration_id, user_id)
            raise
        return registration_id

    async def _start_workflow(self, registration_id: uuid.UUID, user_id: uuid.UUID) -> None:
        st = self.s.settings
        await self.s.temporal.start_workflow(
            RegistrationWorkflow.run,
            RegistrationInput(
                registration_id=registration_id,
                user_id=user_id,
                email_task_queue=st.external_task_queue,
                activity_timeout_seconds=st.db_activity_timeout_seconds,
                code_ttl_seconds=st.verification_code_ttl_seconds,
                max_attempts=st.verification_max_attempts,
                resend_cooldown_seconds=st.verification_resend_cooldown_seconds,
                expiry_seconds=st.registration_expiry_seconds,
            ),
            id=registration_workflow_id(registration_id),
            task_queue=st.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.USER_ID, str(user_id)),
                    SearchAttributePair(
                        search_attributes.STATUS,
                        RegistrationStatus.AWAITING_EMAIL_VERIFICATION.value,
                    ),
                ]
            ),
            static_summary="User registration: email verification, then TOTP MFA",
        )

    async def _discard(self, registration_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Undo a sign-up whose workflow could not be started, so the email stays free."""
        async with transaction(self.s.sessions) as session:
            registration = await session.get(Registration, registration_id)
            user = await session.get(User, user_id)
            for row in (registration, user):
                if row is not None:
                    await session.delete(row)

    async def get(self, registration_id: uuid.UUID) -> Registration:
        """The registration row, or 404."""
        async with self.s.sessions() as session:
            registration = await session.get(Registration, registration_id)
        if registration is None:
            raise errors.NotFound("unknown registration")
        return registration

    async def state(self, registration_id: uuid.UUID) -> RegistrationState | Registration:
        """Live state from the workflow while it runs, the database row once it has ended."""
        decoy = await self._decoys.state(registration_id)
        if decoy is not None:
            return decoy
        registration = await self.get(registration_id)
        if RegistrationStatus(registration.status).is_terminal:
            return registration
        try:
            return await self._handle(registration_id).query(RegistrationWorkflow.status)
        except RPCError:
            return await self.get(registration_id)

    async def verify_email(self, registration_id: uuid.UUID, code: str) -> RegistrationState:
        """Relay a code (as a keyed digest) to the workflow's `verify_email` update."""
        decoy = await self._decoys.state(registration_id)
        if decoy is not None:
            await self._decoys.verify_email(decoy)
        await self.get(registration_id)
        digest = code_digest(self.s.crypto, str(registration_id), code)
        return await self._update(
            registration_id,
            self._handle(registration_id).execute_update(
                RegistrationWorkflow.verify_email,
                VerifyEmailInput(code_digest=digest),
            ),
        )

    async def resend_code(self, registration_id: uuid.UUID) -> RegistrationState:
        """Ask the workflow for a new code (subject to its cooldown)."""
        decoy = await self._decoys.state(registration_id)
        if decoy is not None:
            return await self._decoys.resend_code(decoy)
        await self.get(registration_id)
        return await self._update(
            registration_id,
            self._handle(registration_id).execute_update(RegistrationWorkflow.resend_code),
        )

    def registration_token(self, user_id: uuid.UUID, registration_id: uuid.UUID) -> str:
        """Short-lived token allowing the MFA setup calls of this registration."""
        token, _ = self.s.tokens.issue(
            user_id,
            "registration",
            self.s.settings.registration_token_ttl_seconds,
            rid=str(registration_id),
        )
        return token

    async def setup_mfa(self, user_id: uuid.UUID, client: str) -> tuple[str, str]:
        """Generate and store (encrypted) a TOTP secret; returns it and its otpauth URI."""
        secret = totp.new_secret()
        async with transaction(self.s.sessions) as session:
            user = await self._pending_user_awaiting_mfa(session, user_id)
            user.mfa_secret_encrypted = self.s.crypto.encrypt(secret)
            user.totp_last_step = None
            await record_audit(session, "mfa.setup", actor_user_id=user_id, client=client)
            email = user.email
        return secret, totp.provisioning_uri(secret, email)

    async def verify_mfa(
        self, user_id: uuid.UUID, registration_id: uuid.UUID, code: str, client: str
    ) -> list[str]:
        """Check the first TOTP code, then complete the workflow; returns the recovery codes."""
        account = f"user:{user_id}"
        # The registration token holder proved the email: limited per account, not per client.
        await self.s.throttle.ensure_allowed(account, None)
        async with transaction(self.s.sessions) as session:
            user = await self._pending_user_awaiting_mfa(session, user_id)
            if user.mfa_secret_encrypted is None:
                raise errors.InvalidState("call /api/auth/mfa/setup first")
            accepted = await totp.consume_totp(session, self.s.crypto, user, code)
            await record_audit(
                session,
                "mfa.verify",
                actor_user_id=user_id,
                client=client,
                details={"accepted": accepted},
            )
        if not accepted:
            await self.s.throttle.record_failure(account, client)
            raise auth_errors.InvalidMfaCode()
        codes = new_recovery_codes(self.s.settings.recovery_code_count)
        digests = [recovery_code_digest(self.s, c) for c in codes]
        async with transaction(self.s.sessions) as session:
            # A user brought over from the monolith has no registration workflow: the MFA set
            # up at the first login completes its registration here, in one transaction.
            if await activate_migrated_user(session, user_id, registration_id, digests):
                return codes
        await self._update(
            registration_id,
            self._handle(registration_id).execute_update(
                RegistrationWorkflow.complete_mfa,
                CompleteMfaInput(recovery_code_digests=digests),
            ),
        )
        return codes

    async def _pending_user_awaiting_mfa(self, session: Any, user_id: uuid.UUID) -> User:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise auth_errors.InvalidToken("registration no longer exists")
        if user.status != UserStatus.PENDING:
            raise errors.InvalidState("MFA is already active for this account")
        registration = await session.scalar(
            select(Registration).where(col(Registration.user_id) == user_id)
        )
        if registration is None or registration.status != RegistrationStatus.AWAITING_MFA:
            raise errors.InvalidState("email verification is not complete")
        return user  # type: ignore[no-any-return]

    def _handle(
        self, registration_id: uuid.UUID
    ) -> WorkflowHandle[RegistrationWorkflow, RegistrationResult]:
        return self.s.temporal.get_workflow_handle_for(
            RegistrationWorkflow.run, registration_workflow_id(registration_id)
        )

    async def _update(self, registration_id: uuid.UUID, call: Awaitable[T]) -> T:
        """Run a workflow update and translate its failures into problem+json errors."""
        try:
            return await call
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                details = cause.details[0] if cause.details else {}
                error_type = _UPDATE_ERRORS.get(cause.type or "", errors.AppError)
                raise error_type(cause.message, **details) from exc
            raise
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                registration = await self.get(registration_id)
                raise errors.InvalidState(
                    f"registration is {registration.status}",
                    registration_status=registration.status,
                ) from exc
            raise
