"""The client events' rate limit: events per user per minute, a fixed window in Redis (shared
by every API process)."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

from api.analytics.errors import TooManyEvents


async def spend_event_budget(redis: Redis, user_id: uuid.UUID, count: int, limit: int) -> None:
    """Count `count` events against this minute's budget, or refuse them all (429) and count
    none when they do not fit."""
    now = time.time()
    window = int(now // 60)
    key = f"analytics:events:{user_id}:{window}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incrby(key, count)
        pipe.expire(key, 120)
        used, _ = await pipe.execute()
    if int(used) > limit:
        await redis.decrby(key, count)
        retry_after = max(1, int((window + 1) * 60 - now))
        raise TooManyEvents(
            f"at most {limit} events a minute; retry in {retry_after} s", retry_after=retry_after
        )
