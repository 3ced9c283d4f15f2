"""404s of logged-in callers counted in Redis per minute: bursts on ids that are not the
caller's are how enumeration shows (`GET /api/security/threats`)."""

from __future__ import annotations

import time

from redis.asyncio import Redis

BUCKET_SECONDS = 60
KEEP_SECONDS = 25 * 3600  # the threats route looks back at most a day
TOTAL_KEY = "threats:404:{}"  # minute -> count
BY_USER_KEY = "threats:404u:{}"  # minute -> hash of user id -> count


def bucket(at: float) -> int:
    """The minute a moment falls in."""
    return int(at) // BUCKET_SECONDS


async def count_not_found(redis: Redis, user_id: str) -> None:
    """Count one 404 answered to this user, now."""
    now = bucket(time.time())
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(TOTAL_KEY.format(now))
        pipe.expire(TOTAL_KEY.format(now), KEEP_SECONDS)
        pipe.hincrby(BY_USER_KEY.format(now), user_id, 1)
        pipe.expire(BY_USER_KEY.format(now), KEEP_SECONDS)
        await pipe.execute()


async def not_found_counts(redis: Redis, minutes: int) -> tuple[int, dict[str, int]]:
    """404s in the last `minutes`, in all and per user."""
    now = bucket(time.time())
    async with redis.pipeline(transaction=False) as pipe:
        for b in range(now - minutes + 1, now + 1):
            pipe.get(TOTAL_KEY.format(b))
            pipe.hgetall(BY_USER_KEY.format(b))
        answers = await pipe.execute()
    total = 0
    per_user: dict[str, int] = {}
    for count, users in zip(answers[::2], answers[1::2], strict=True):
        total += int(count or 0)
        for user, n in (users or {}).items():
            key = user.decode() if isinstance(user, bytes) else str(user)
            per_user[key] = per_user.get(key, 0) + int(n)
    return total, per_user
