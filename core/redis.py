"""Redis client construction."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str, *, timeout: float | None = None) -> Redis:
    """Create an async Redis client that decodes responses to str; `timeout` bounds connects
    and commands (the API's, so a Redis that is down answers 503 quickly)."""
    return Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=timeout, socket_timeout=timeout
    )
