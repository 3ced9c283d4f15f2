"""Helpers of the security tests: staff members and plain customers made without the
registration workflow (fast), their tokens minted by the real session code, audit reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col

from api.auth.sessions import SessionService
from api.auth.staff_accounts import create_staff
from api.auth.totp import new_secret
from api.services import Services
from core.db import SessionFactory, transaction
from models.audit import AuditEvent
from models.identity.tables import User, UserStatus
from models.staff.tables import StaffRole

PRINCIPALS = ("anonymous", "customer", "support", "ops", "compliance", "admin")


@dataclass
class Member:
    """A user the test acts as, with a live access token."""

    user_id: uuid.UUID
    access_token: str
    expires_in: int

    @property
    def auth(self) -> dict[str, str]:
        """Authorization header."""
        return {"Authorization": f"Bearer {self.access_token}"}


async def new_member(services: Services, email: str, role: StaffRole | None) -> Member:
    """A staff member with `role` (made by `vortex staff create`'s function), or an active
    customer with MFA (a user row, no registration workflow), logged in by the session code."""
    async with transaction(services.sessions) as session:
        if role is not None:
            user_id = uuid.UUID(
                (await create_staff(session, services.crypto, email, role, "pytest")).user_id
            )
        else:
            user = User(
                email=email,
                first_name="Cu",
                last_name="Stomer",
                password_hash="unusable",
                status=UserStatus.ACTIVE,
                mfa_secret_encrypted=services.crypto.encrypt(new_secret()),
                mfa_enabled=True,
            )
            session.add(user)
            await session.flush()
            user_id = user.id
    pair = await SessionService(services).issue_session(user_id, device=("pytest", "127.0.0.1"))
    return Member(user_id, pair.access_token, pair.expires_in)


def mint(services: Services, member: Member) -> dict[str, str]:
    """A fresh access token of the member in a new session id (calls that log out or revoke
    a session then cannot spoil the next call)."""
    claims = services.tokens.verify(member.access_token, "access")
    token, _ = services.tokens.issue(
        member.user_id, "access", 300, sid=str(uuid.uuid4()), roles=claims.extra.get("roles", [])
    )
    return {"Authorization": f"Bearer {token}"}


async def audit_rows(sessions: SessionFactory, *actions: str) -> list[AuditEvent]:
    """Audit events with one of these actions, oldest first."""
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent)
            .where(col(AuditEvent.action).in_(actions))
            .order_by(col(AuditEvent.id))
        )
        return list(rows.scalars())
