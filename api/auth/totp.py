"""TOTP (RFC 6238): secrets encrypted at rest, a +/-1 step window, and no code accepted twice."""

from __future__ import annotations

import time
import uuid

import pyotp
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.crypto import Crypto
from models.identity.tables import User

ISSUER_NAME = "VortexCore"
STEP_SECONDS = 30


def new_secret() -> str:
    """A fresh random base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI authenticator apps scan."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER_NAME)


def matching_step(secret: str, code: str, *, at: float | None = None) -> int | None:
    """The time step (within +/-1 of now) whose code equals `code`, if any."""
    code = code.strip()
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int((at if at is not None else time.time()) // STEP_SECONDS)
    for step in (now_step - 1, now_step, now_step + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None


async def consume_totp(session: AsyncSession, crypto: Crypto, user: User, code: str) -> bool:
    """Accept a code once: the step must be newer than the last accepted one (atomic update)."""
    if user.mfa_secret_encrypted is None:
        return False
    step = matching_step(crypto.decrypt(user.mfa_secret_encrypted), code)
    if step is None:
        return False
    result = await session.execute(
        update(User)
        .where(
            col(User.id) == user.id,
            or_(col(User.totp_last_step).is_(None), col(User.totp_last_step) < step),
        )
        .values(totp_last_step=step)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def user_key(user_id: uuid.UUID) -> str:
    """Throttle key of an account."""
    return f"user:{user_id}"
