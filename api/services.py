"""Process-wide service handles shared by routes (built once in the app lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.auth.throttle import Throttle, ThrottlePolicy
from api.auth.tokens import TokenService
from api.fast_reads import create_read_pool
from core.breakers import configure_breakers
from core.crypto import Crypto, crypto_for
from core.db import (
    SessionFactory,
    asyncpg_dsn,
    create_engine,
    create_read_session_factory,
    create_session_factory,
)
from core.redis import create_redis
from core.settings import Settings
from temporal.client import connect_for


@dataclass
class Services:
    """Everything a request handler may need."""

    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    reads: SessionFactory  # autocommit: single lookups on hot paths
    read_pool: asyncpg.Pool  # plain asyncpg for api.fast_reads queries
    redis: Redis
    temporal: Client
    crypto: Crypto
    tokens: TokenService
    throttle: Throttle

    @classmethod
    async def connect(cls, settings: Settings, temporal: Client | None = None) -> Services:
        """Open connections to PostgreSQL, Redis and Temporal (with short timeouts: a service
        that is down makes a route answer 503 quickly)."""
        configure_breakers(settings)
        engine = create_engine(
            settings.effective_database_url,
            pool_size=settings.db_pool_size,
            connect_timeout=settings.db_connect_timeout_seconds,
            pool_timeout=settings.db_pool_timeout_seconds,
            max_overflow=settings.db_max_overflow,
        )
        crypto = crypto_for(settings.secret_key.get_secret_value())
        redis = create_redis(settings.effective_redis_url, timeout=settings.redis_timeout_seconds)
        client = temporal or await connect_for(
            settings, retry_seconds=settings.temporal_rpc_retry_seconds
        )
        read_pool = await create_read_pool(
            asyncpg_dsn(settings.effective_database_url),
            max_size=settings.db_pool_size,
            connect_timeout=settings.db_connect_timeout_seconds,
        )
        return cls(
            settings=settings,
            read_pool=read_pool,
            engine=engine,
            sessions=create_session_factory(engine),
            reads=create_read_session_factory(engine),
            redis=redis,
            temporal=client,
            crypto=crypto,
            tokens=TokenService(
                crypto.jwt_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            ),
            throttle=Throttle(
                redis,
                ThrottlePolicy(
                    account_max_failures=settings.login_max_failures,
                    client_max_failures=settings.client_max_failures,
                    window_seconds=settings.login_failure_window_seconds,
                    lockout_seconds=settings.login_lockout_seconds,
                ),
            ),
        )

    async def close(self) -> None:
        """Release connections."""
        await self.redis.aclose()
        await self.read_pool.close()
        await self.engine.dispose()
