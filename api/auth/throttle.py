"""Failure throttling in Redis: per account and per client, with a lockout that expires.

The per-client limit stops password guessing from one address; it must not stop customers who
share that address (a proxy, an office) from logging in. So a locked client is refused only
what a password alone would do: a login that carries a second factor, or a call made with a
token earned by one, is limited per account only (`ensure_allowed(account, None)`).
"""

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


def _locked(retry_after: int) -> TooManyAttempts:
    return TooManyAttempts("too many failed attempts; temporarily locked", retry_after=retry_after)


class Throttle:
    """Counts failures and locks out accounts and clients that exceed the policy."""

    def __init__(self, redis: Redis, policy: ThrottlePolicy, prefix: str = "throttle") -> None:
        self._redis, self._policy, self._prefix = redis, policy, prefix

    async def ensure_allowed(self, account: str, client: str | None) -> None:
        """Raise TooManyAttempts (with retry-after) while the account or the client is locked.

        `client=None`: the caller proves more than a password (a second factor, or a token it
        earned with one), so only the account's lock applies; see `client_lock`."""
        await self._refuse_if_locked(self._lock_key("acct", account))
        if client is not None:
            await self._refuse_if_locked(self._lock_key("client", client))

    async def client_lock(self, client: str) -> TooManyAttempts | None:
        """The error to answer while the client address is locked out (None: it is not)."""
        ttl = await self._redis.ttl(self._lock_key("client", client))
        return _locked(int(ttl)) if ttl and ttl > 0 else None

    async def _refuse_if_locked(self, key: str) -> None:
        ttl = await self._redis.ttl(key)
        if ttl and ttl > 0:
            raise _locked(int(ttl))

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
