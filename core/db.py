"""Async SQLAlchemy engine and session factory for PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.tracing import trace_engine

SessionFactory = async_sessionmaker[AsyncSession]


def asyncpg_url(url: str) -> str:
    """Normalise any PostgreSQL URL to the asyncpg driver."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"only PostgreSQL is supported, got {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """The same database as a plain `postgresql://` DSN, for asyncpg's own connections."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    connect_timeout: float | None = None,
    pool_timeout: float | None = None,
) -> AsyncEngine:
    """Create the process engine. No pre-ping (it costs a round trip per transaction on the
    ledger's hot path); connections are recycled instead, and a connection lost to a database
    restart fails one unit of work, which activities retry. Overflow connections (default: as
    many as the pool) are closed after use. The API passes short connect and pool timeouts, so
    a database that is down answers 503 quickly instead of hanging."""
    options: dict[str, Any] = {}
    if connect_timeout is not None:
        options["connect_args"] = {"timeout": connect_timeout}
    if pool_timeout is not None:
        options["pool_timeout"] = pool_timeout
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=1800,
        **options,
    )
    trace_engine(engine)  # SQL spans when tracing is on
    return engine


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions never expire loaded objects on commit (they are read after commits)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions for independent reads: autocommit, so a lookup costs one round trip instead of
    BEGIN, SELECT and ROLLBACK. Never write through them, nor rely on one snapshot across
    statements."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


def read_sessions_for(factory: SessionFactory) -> SessionFactory:
    """Autocommit read sessions on the same engine (and pool) as `factory`."""
    engine: AsyncEngine = factory.kw["bind"]
    return create_read_session_factory(engine)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error."""
    async with factory() as session, session.begin():
        yield session
