"""Which channels a user may subscribe to: their own user channel, their own accounts, and the
global announcements. Anything else is refused the same way whether or not it exists."""

from __future__ import annotations

import uuid

import asyncpg

from activities.events.streams import GLOBAL_CHANNEL

_OWNS_ACCOUNT = "SELECT 1 FROM ledger_accounts WHERE id = $1 AND owner_user_id = $2"


def user_channel(user_id: uuid.UUID) -> str:
    """The channel of everything a user owns."""
    return f"user.{user_id}"


def default_channels(user_id: uuid.UUID) -> list[str]:
    """What a socket follows when its `auth` message names no channels."""
    return [user_channel(user_id), GLOBAL_CHANNEL]


async def allowed(pool: asyncpg.Pool, user_id: uuid.UUID, channel: str) -> bool:
    """Whether `user_id` may follow `channel` (one indexed lookup for an account channel)."""
    if channel in (GLOBAL_CHANNEL, user_channel(user_id)):
        return True
    kind, _, ident = channel.partition(".")
    if kind != "account":
        return False
    try:
        account_id = uuid.UUID(ident)
    except ValueError:
        return False
    return await pool.fetchval(_OWNS_ACCOUNT, account_id, user_id) is not None
