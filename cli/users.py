"""`vortex users disable|enable EMAIL --reason ...`: ops switch a customer off or on again."""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy import select
from sqlmodel import col

from api.auth.registration import normalize_email
from api.auth.user_status import set_user_status
from core.db import create_engine, create_session_factory
from core.redis import create_redis
from core.settings import Settings
from models.identity.tables import User, UserStatus


def add_user_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vortex users`."""
    actions = parser.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("disable", "end every session of a customer at once and refuse new ones (audited)"),
        ("enable", "let a disabled customer log in again (audited; old sessions stay ended)"),
    ):
        command = actions.add_parser(action, help=help_text)
        command.add_argument("email", help="the customer's email address")
        command.add_argument("--reason", required=True, help="why (kept in the audit log)")


async def change_status(settings: Settings, email: str, status: UserStatus, reason: str) -> str:
    """Set the status of the user with this email; returns what was done, for the operator."""
    engine = create_engine(settings.effective_database_url, pool_size=1)
    redis = create_redis(settings.effective_redis_url)
    try:
        sessions = create_session_factory(engine)
        async with sessions() as session:
            user_id = (
                await session.execute(
                    select(col(User.id)).where(col(User.email) == normalize_email(email))
                )
            ).scalar_one_or_none()
        if user_id is None:
            return f"no user with email {email}"
        user = await set_user_status(
            sessions, redis, settings, user_id, status, reason=reason, actor="cli"
        )
        return f"user {user.id} is {user.status}"
    finally:
        await redis.aclose()
        await engine.dispose()


def run_users_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `vortex users <action>`; exit code 1 when the user is unknown."""
    status = UserStatus.DISABLED if args.action == "disable" else UserStatus.ACTIVE
    outcome = asyncio.run(change_status(settings, args.email, status, args.reason))
    print(outcome)
    return 1 if outcome.startswith("no user") else 0
