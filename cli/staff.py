"""`vortex staff create|grant|revoke --email ... --role ...`: staff administration (audited in
the hash-chained log). `create` makes a staff user with a password and a TOTP secret printed
once (an otpauth URI for the authenticator app), or gives the role to an existing active user
with MFA. A role reaches the access token at the next login or refresh; a revoked role stops
working on the staff routes at once (they re-check it)."""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from api.auth.registration import normalize_email
from api.auth.staff_accounts import StaffRefused, create_staff
from core.crypto import crypto_for
from core.db import create_engine, create_session_factory, transaction
from core.settings import Settings
from models.audit import record_audit
from models.identity.tables import User
from models.staff.tables import StaffRole, StaffRoleGrant


def add_staff_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vortex staff`."""
    actions = parser.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("create", "create an MFA staff user (password and TOTP shown once), or add the role"),
        ("grant", "give a user a staff role (audited)"),
        ("revoke", "take a staff role away (audited)"),
    ):
        command = actions.add_parser(action, help=help_text)
        command.add_argument("--email", required=True, help="the user's email address")
        command.add_argument("--role", required=True, choices=[r.value for r in StaffRole])
        command.add_argument("--reason", default="", help="why (kept in the audit log)")


async def change_role(settings: Settings, action: str, email: str, role: str, reason: str) -> str:
    """Grant or revoke one role; returns what was done, for the operator."""
    done = {"grant": "granted", "revoke": "revoked"}[action]
    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        async with transaction(create_session_factory(engine)) as session:
            user_id = await session.scalar(
                select(col(User.id)).where(col(User.email) == normalize_email(email))
            )
            if user_id is None:
                return f"no user with email {email}"
            if action == "grant":
                changed = await session.execute(
                    insert(StaffRoleGrant)
                    .values(user_id=user_id, role=role, granted_by="cli")
                    .on_conflict_do_nothing()
                    .returning(col(StaffRoleGrant.role))
                )
            else:
                changed = await session.execute(
                    delete(StaffRoleGrant)
                    .where(col(StaffRoleGrant.user_id) == user_id, col(StaffRoleGrant.role) == role)
                    .returning(col(StaffRoleGrant.role))
                )
            if changed.first() is None:
                return f"user {user_id}: nothing to do ({role} already {done})"
            await record_audit(
                session,
                f"staff.role_{done}",
                subject=str(user_id),
                client="cli",
                details={"role": role, "reason": reason},
            )
        return f"user {user_id}: {role} {done}"
    finally:
        await engine.dispose()


async def create(settings: Settings, email: str, role: str) -> str:
    """`vortex staff create`: what was done, with the one-time credentials of a new user."""
    engine = create_engine(settings.effective_database_url, pool_size=1)
    crypto = crypto_for(settings.secret_key.get_secret_value())
    try:
        async with transaction(create_session_factory(engine)) as session:
            done = await create_staff(session, crypto, email, StaffRole(role), "cli")
    except StaffRefused as exc:
        return f"no user: {exc}"
    finally:
        await engine.dispose()
    if not done.created:
        return f"user {done.user_id}: {done.role} granted (existing MFA user)"
    return (
        f"user {done.user_id}: created with role {done.role}\n"
        f"password (shown once): {done.password}\n"
        f"TOTP (shown once, add to an authenticator app): {done.otpauth_uri}"
    )


def run_staff_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `vortex staff <action>`; exit code 1 when the user is unknown or refused."""
    if args.action == "create":
        outcome = asyncio.run(create(settings, args.email, args.role))
        print(outcome)
        return 1 if outcome.startswith("no user") else 0
    outcome = asyncio.run(change_role(settings, args.action, args.email, args.role, args.reason))
    print(outcome)
    return 1 if outcome.startswith("no user") else 0
