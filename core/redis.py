"""Redis client construction."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    """Create an async Redis client that decodes responses to str."""
    return Redis.from_url(url, decode_responses=True)
