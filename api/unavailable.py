"""A backing service that cannot be reached is a 503 with `Retry-After`, never a 500.

`down_dependency` names the service behind an exception (Temporal, PostgreSQL or Redis) when
the exception means "unreachable" rather than "refused"; the problem handler answers those
with `DependencyUnavailable`. Timeouts are kept short where the clients are built
(`core/db.py`, `core/redis.py`, `temporal/client.py`), so the answer comes quickly.
"""

from __future__ import annotations

from typing import Final

import asyncpg
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors
from temporalio.service import RPCError, RPCStatusCode

from core.errors import ServiceUnavailable

TEMPORAL: Final = "temporal"
DATABASE: Final = "database"
REDIS: Final = "redis"
_TEMPORAL_DOWN = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})
_CONNECT_FAILED = "Failed client connect"  # a lazy Temporal client that cannot connect


class DependencyUnavailable(ServiceUnavailable):
    """A backing service is unreachable; try again after `retry_after` seconds."""

    type, title = "service-unavailable", "A backing service is unavailable"


def temporal_down(exc: BaseException) -> bool:
    """True when a Temporal client call failed because the server cannot be reached."""
    if isinstance(exc, RPCError):
        return exc.status in _TEMPORAL_DOWN
    return isinstance(exc, RuntimeError) and str(exc).startswith(_CONNECT_FAILED)


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, sa_errors.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa_errors.DBAPIError):
        return bool(exc.connection_invalidated) or _database_down_orig(exc.orig)
    return _database_down_orig(exc)


def _database_down_orig(exc: BaseException | None) -> bool:
    # A server at its connection limit (SQLSTATE 53300) refuses this connection for now, not
    # this request: another try shortly may well get in.
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError,
    )


def down_dependency(exc: BaseException) -> str | None:
    """`temporal`, `database` or `redis` when `exc` (or what caused it) means that service
    is unreachable; None for anything else."""
    current: BaseException | None = exc
    for _ in range(4):  # a short walk: wrappers rarely nest deeper
        if current is None:
            return None
        if temporal_down(current):
            return TEMPORAL
        if isinstance(current, redis_errors.ConnectionError | redis_errors.TimeoutError):
            return REDIS
        if _database_down(current):
            return DATABASE
        current = current.__cause__ or current.__context__
    return None


def unavailable(
    dependency: str, retry_after: int, detail: str | None = None, **extra: object
) -> ServiceUnavailable:
    """The 503 for an unreachable dependency (`extra` goes into the problem body)."""
    return DependencyUnavailable(
        detail or f"the {dependency} service cannot be reached; try again shortly",
        dependency=dependency,
        retry_after=retry_after,
        **extra,
    )
