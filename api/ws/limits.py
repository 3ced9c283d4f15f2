"""Connections per user (counted in Redis across API processes) and the inbound message rate."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

# A sorted set per user: member = connection id, score = lease expiry (unix seconds). Leases
# are renewed by each socket's heartbeat, so a crashed process's sockets stop counting soon.
_KEY = "ws:connections:{}"
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2]))
return 1
"""


class ConnectionLeases:
    """The per-user connection limit, shared by every API process through Redis."""

    def __init__(self, redis: Redis, limit: int, lease_seconds: float) -> None:
        self._redis, self._limit, self._lease = redis, limit, lease_seconds
        self._acquire = redis.register_script(_ACQUIRE)

    async def acquire(self, user_id: uuid.UUID, connection_id: str) -> bool:
        """Take (or renew) a lease; False when the user already has `limit` live sockets."""
        granted = await self._acquire(
            keys=[_KEY.format(user_id)],
            args=[time.time(), self._lease, self._limit, connection_id],
        )
        return bool(granted)

    async def release(self, user_id: uuid.UUID, connection_id: str) -> None:
        """Give the lease back when the socket closes."""
        await self._redis.zrem(_KEY.format(user_id), connection_id)


class TokenBucket:
    """Messages a client may send: `rate` per second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate, self._burst = rate, float(burst)
        self._tokens, self._at = float(burst), time.monotonic()

    def take(self) -> bool:
        """Spend one token; False when the client is over its rate."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
