"""RegistrationWorkflow: email verification (update), then mandatory TOTP MFA, then activation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.registration import RegistrationActivities
    from models.identity.payloads import (
        ActivateInput,
        CheckCodeInput,
        CloseRegistrationInput,
        CompleteMfaInput,
        RegistrationInput,
        RegistrationResult,
        RegistrationState,
        SendCodeInput,
        VerifyEmailInput,
    )
    from models.identity.tables import RegistrationStatus
    from temporal.activity_options import db_step, external_call
    from temporal.status import publish_status


@workflow.defn(name="RegistrationWorkflow")
class RegistrationWorkflow:
    """Drives one sign-up from a pending user to an active user with MFA, or to expiry."""

    @workflow.init
    def __init__(self, inp: RegistrationInput) -> None:
        self._inp = inp
        self._status = RegistrationStatus.AWAITING_EMAIL_VERIFICATION
        self._attempts_left = inp.max_attempts
        self._codes_sent = 0
        self._last_sent_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, inp: RegistrationInput) -> RegistrationResult:
        """Send a code, wait for the email and MFA steps, or expire and clean up."""
        self._expires_at = workflow.now() + timedelta(seconds=inp.expiry_seconds)
        self._publish_status()
        try:
            await self._send_code()
        except ActivityError:  # the email could not be sent within its retry budget
            await self._close(RegistrationStatus.FAILED)
            return RegistrationResult(registration_id=inp.registration_id, status=self._status)
        try:
            await workflow.wait_condition(
                lambda: self._status.is_terminal, timeout=self._time_left()
            )
        except TimeoutError:
            await workflow.wait_condition(lambda: not self._lock.locked())
            if not self._status.is_terminal:
                await self._close(RegistrationStatus.EXPIRED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RegistrationResult(registration_id=inp.registration_id, status=self._status)

    @workflow.query
    def status(self) -> RegistrationState:
        """Current state of the registration."""
        return RegistrationState(
            registration_id=self._inp.registration_id,
            status=self._status,
            attempts_left=self._attempts_left,
            codes_sent=self._codes_sent,
            resend_available_at=self._resend_available_at(),
            expires_at=self._expires_at,
        )

    @workflow.update
    async def verify_email(self, req: VerifyEmailInput) -> RegistrationState:
        """Check a code; a wrong one costs an attempt, the last wrong one fails the registration."""
        async with self._lock:
            self._require(RegistrationStatus.AWAITING_EMAIL_VERIFICATION)
            check = await workflow.execute_activity_method(
                RegistrationActivities.check_email_code,
                CheckCodeInput(
                    registration_id=self._inp.registration_id,
                    sequence=self._codes_sent,
                    code_digest=req.code_digest,
                ),
                **db_step(self._inp.activity_timeout_seconds),
            )
            if check.outcome == "ok":
                self._status = RegistrationStatus.AWAITING_MFA
                self._publish_status()
                return self.status()
            if check.outcome == "expired":
                raise ApplicationError(
                    "verification code expired; request a new one",
                    {"attempts_left": self._attempts_left},
                    type="VerificationCodeExpired",
                )
            self._attempts_left -= 1
            if self._attempts_left <= 0:
                await self._close(RegistrationStatus.FAILED)
                raise ApplicationError(
                    "too many wrong codes; registration failed",
                    {"attempts_left": 0},
                    type="TooManyAttempts",
                )
            raise ApplicationError(
                "wrong verification code",
                {"attempts_left": self._attempts_left},
                type="InvalidVerificationCode",
            )

    @verify_email.validator
    def _validate_verify_email(self, req: VerifyEmailInput) -> None:
        self._require(RegistrationStatus.AWAITING_EMAIL_VERIFICATION)

    @workflow.update
    async def resend_code(self) -> RegistrationState:
        """Send a fresh code once the cooldown has passed; older codes stop working."""
        async with self._lock:
            self._require(RegistrationStatus.AWAITING_EMAIL_VERIFICATION)
            available_at = self._resend_available_at()
            if available_at is not None and workflow.now() < available_at:
                raise ApplicationError(
                    "a code was sent recently; wait before asking again",
                    {"resend_available_at": available_at.isoformat()},
                    type="ResendCooldown",
                )
            await self._send_code()
            return self.status()

    @resend_code.validator
    def _validate_resend_code(self) -> None:
        self._require(RegistrationStatus.AWAITING_EMAIL_VERIFICATION)

    @workflow.update
    async def complete_mfa(self, req: CompleteMfaInput) -> RegistrationState:
        """Activate the user once the API has verified the first TOTP code."""
        async with self._lock:
            self._require(RegistrationStatus.AWAITING_MFA)
            await workflow.execute_activity_method(
                RegistrationActivities.activate_user,
                ActivateInput(
                    registration_id=self._inp.registration_id,
                    recovery_code_digests=req.recovery_code_digests,
                ),
                **db_step(self._inp.activity_timeout_seconds),
            )
            self._status = RegistrationStatus.COMPLETED
            self._publish_status()
            return self.status()

    @complete_mfa.validator
    def _validate_complete_mfa(self, req: CompleteMfaInput) -> None:
        self._require(RegistrationStatus.AWAITING_MFA)

    def _require(self, expected: RegistrationStatus) -> None:
        if self._status != expected:
            raise ApplicationError(
                f"registration is {self._status.value}, not {expected.value}",
                {"registration_status": self._status.value},
                type="InvalidRegistrationState",
                non_retryable=True,
            )

    async def _send_code(self) -> None:
        self._codes_sent += 1
        self._last_sent_at = workflow.now()
        await workflow.execute_activity_method(
            RegistrationActivities.send_verification_code,
            SendCodeInput(
                registration_id=self._inp.registration_id,
                sequence=self._codes_sent,
                ttl_seconds=self._inp.code_ttl_seconds,
            ),
            task_queue=self._inp.email_task_queue,
            **external_call(),
        )

    async def _close(self, status: RegistrationStatus) -> None:
        await workflow.execute_activity_method(
            RegistrationActivities.close_registration,
            CloseRegistrationInput(registration_id=self._inp.registration_id, status=status),
            **db_step(self._inp.activity_timeout_seconds),
        )
        self._status = status
        self._publish_status()

    def _publish_status(self) -> None:
        publish_status(self._status.value)

    def _resend_available_at(self) -> datetime | None:
        if self._last_sent_at is None:
            return None
        return self._last_sent_at + timedelta(seconds=self._inp.resend_cooldown_seconds)

    def _time_left(self) -> timedelta:
        assert self._expires_at is not None
        return max(self._expires_at - workflow.now(), timedelta(0))
