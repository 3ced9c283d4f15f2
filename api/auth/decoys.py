"""Decoy registrations: a sign-up for an email that already has an account gets a registration
id that behaves like a real one (status, wrong-code countdown, resend cooldown) but creates no
user, no workflow and sends no code, so neither the answer nor the status URL reveals the
account. Decoys live in Redis and expire with the registration window."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from api.auth import errors as auth_errors
from core import errors
from core.settings import Settings
from models.identity.payloads import RegistrationState
from models.identity.tables import RegistrationStatus

KEY = "registration:decoy:{}"


class DecoyRegistrations:
    """Stores and answers for decoy registrations."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis, self._settings = redis, settings

    async def create(self, registration_id: uuid.UUID) -> None:
        """Remember a decoy for as long as a real registration would live."""
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self._settings.registration_expiry_seconds)
        key = KEY.format(registration_id)
        await self._redis.hset(
            key,
            mapping={
                "status": RegistrationStatus.AWAITING_EMAIL_VERIFICATION.value,
                "attempts_left": self._settings.verification_max_attempts,
                "last_sent_at": now.isoformat(),
                "expires_at": expires.isoformat(),
            },
        )
        await self._redis.expire(key, self._settings.registration_expiry_seconds)

    async def state(self, registration_id: uuid.UUID) -> RegistrationState | None:
        """The decoy's state, or None if there is no such decoy."""
        raw = await self._redis.hgetall(KEY.format(registration_id))
        data = {str(k): str(v) for k, v in raw.items()}  # the client decodes; this types it
        if not data:
            return None
        last_sent = datetime.fromisoformat(data["last_sent_at"])
        cooldown = timedelta(seconds=self._settings.verification_resend_cooldown_seconds)
        return RegistrationState(
            registration_id=registration_id,
            status=RegistrationStatus(data["status"]),
            attempts_left=int(data["attempts_left"]),
            codes_sent=1,
            resend_available_at=last_sent + cooldown,
            expires_at=datetime.fromisoformat(data["expires_at"]),
        )

    async def verify_email(self, state: RegistrationState) -> None:
        """Every code is wrong; the countdown and the final failure match the real workflow."""
        self._require_awaiting(state)
        key = KEY.format(state.registration_id)
        left = int(await self._redis.hincrby(key, "attempts_left", -1))
        if left <= 0:
            await self._redis.hset(key, "status", RegistrationStatus.FAILED.value)
            raise auth_errors.RegistrationFailed(
                "too many wrong codes; registration failed", attempts_left=0
            )
        raise auth_errors.InvalidVerificationCode("wrong verification code", attempts_left=left)

    async def resend_code(self, state: RegistrationState) -> RegistrationState:
        """Same cooldown as the real workflow; nothing is sent."""
        self._require_awaiting(state)
        now = datetime.now(UTC)
        if state.resend_available_at and now < state.resend_available_at:
            raise auth_errors.TooManyAttempts(
                "a code was sent recently; wait before asking again",
                resend_available_at=state.resend_available_at.isoformat(),
            )
        await self._redis.hset(KEY.format(state.registration_id), "last_sent_at", now.isoformat())
        return await self.state(state.registration_id) or state

    @staticmethod
    def _require_awaiting(state: RegistrationState) -> None:
        if state.status != RegistrationStatus.AWAITING_EMAIL_VERIFICATION:
            raise errors.InvalidState(
                f"registration is {state.status.value}", registration_status=state.status.value
            )
