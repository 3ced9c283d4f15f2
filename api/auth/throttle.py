"""Failure throttling in Redis: per account and per client, with a lockout that expires."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from api.auth.errors import TooManyAttempts


@dataclass(frozen=True)
class ThrottlePolicy:
    """Limits: failures allowed per window before a lockout of `lockout_seconds`."""

    account_max_failures: int
    client_max_failures: int
    window_seconds: int
    lockout_seconds: int


class Throttle:
    """Counts failures and locks out accounts and clients that exceed the policy."""

    def __init__(self, redis: Redis, policy: ThrottlePolicy, prefix: str = "throttle") -> None:
        self._redis, self._policy, self._prefix = redis, policy, prefix

    async def ensure_allowed(self, account: str, client: str) -> None:
        """Raise TooManyAttempts (with retry-after) while the account or client is locked."""
        for key in (self._lock_key("acct", account), self._lock_key("client", client)):
            ttl = await self._redis.ttl(key)
            if ttl and ttl > 0:
                raise TooManyAttempts(
                    "too many failed attempts; temporarily locked", retry_after=int(ttl)
                )

    async def record_failure(self, account: str, client: str) -> None:
        """Count one failure; lock the account or the client when its limit is reached."""
        p = self._policy
        for scope, subject, limit in (
            ("acct", account, p.account_max_failures),
            ("client", client, p.client_max_failures),
        ):
            counter = f"{self._prefix}:fail:{scope}:{subject}"
            async with self._redis.pipeline(transaction=True) as pipe:
                # SET NX + INCR rather than EXPIRE NX: the window starts at the first failure
                # and this works on Redis 6.2 (the embedded server) as well as 7.
                pipe.set(counter, 0, ex=p.window_seconds, nx=True)
                pipe.incr(counter)
                _, failures = await pipe.execute()
            if int(failures) >= limit:
                await self._redis.set(self._lock_key(scope, subject), "1", ex=p.lockout_seconds)
                await self._redis.delete(counter)

    async def record_success(self, account: str) -> None:
        """A successful login clears the account's failure count."""
        await self._redis.delete(f"{self._prefix}:fail:acct:{account}")

    def _lock_key(self, scope: str, subject: str) -> str:
        return f"{self._prefix}:lock:{scope}:{subject}"
