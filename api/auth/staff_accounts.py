"""Staff identities: `vortex staff create` makes an MFA-protected staff user, or gives a role to
an existing active user who already has MFA (every user here has: registration requires it)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import totp
from api.auth.registration import normalize_email
from core.crypto import Crypto, hash_password
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import User, UserStatus
from models.staff.tables import StaffRole, StaffRoleGrant


class StaffRefused(Exception):
    """The user cannot become staff (inactive, or without MFA); the message says why."""


@dataclass(frozen=True)
class StaffCreated:
    """The outcome; `password` and `otpauth_uri` are set only for a new user (shown once)."""

    user_id: str
    role: str
    created: bool
    password: str | None = None
    otpauth_uri: str | None = None


async def create_staff(
    session: AsyncSession, crypto: Crypto, email: str, role: StaffRole, actor: str
) -> StaffCreated:
    """Create an active staff user with a password and a TOTP secret, or grant `role` to an
    existing active MFA user; audited `staff.created` / `staff.role_granted`."""
    address = normalize_email(email)
    user = await session.scalar(select(User).where(col(User.email) == address))
    password = otpauth = None
    if user is None:
        password = secrets.token_urlsafe(18)
        secret = totp.new_secret()
        now = utcnow()
        user = User(
            email=address,
            first_name="Staff",
            last_name=address.split("@", 1)[0][:100],
            password_hash=hash_password(password),
            status=UserStatus.ACTIVE,
            mfa_secret_encrypted=crypto.encrypt(secret),
            mfa_enabled=True,
            activated_at=now,
        )
        session.add(user)
        await session.flush()
        otpauth = totp.provisioning_uri(secret, address)
    elif user.status != UserStatus.ACTIVE or not user.mfa_enabled:
        raise StaffRefused(f"user {user.id} is not active with MFA; staff must use MFA")
    await session.execute(
        insert(StaffRoleGrant)
        .values(user_id=user.id, role=role, granted_by=actor[:100])
        .on_conflict_do_nothing()
    )
    await record_audit(
        session,
        "staff.created" if password else "staff.role_granted",
        subject=str(user.id),
        client=actor[:100],
        details={"role": role.value, "reason": "vortex staff create"},
    )
    return StaffCreated(str(user.id), role.value, password is not None, password, otpauth)
