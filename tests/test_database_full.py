"""A PostgreSQL server at its connection limit refuses a connection for now, not the request:
the API names the database as unavailable (a 503 with Retry-After), never a 500."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import exc as sa_errors
from sqlalchemy import make_url, text

from api.unavailable import DATABASE, down_dependency
from core.db import asyncpg_dsn, create_engine


async def test_a_connection_refused_for_the_limit_is_the_database_being_unavailable(
    postgres_server_url: str,
) -> None:
    role = f"vortex_full_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_server_url))
    await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')  # a full server, for it
    engine = create_engine(
        make_url(postgres_server_url).set(username=role, password=None).render_as_string(False),
        pool_size=1,
    )
    try:
        with pytest.raises(sa_errors.DBAPIError) as refused:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()

    assert down_dependency(refused.value) == DATABASE
    chain: list[BaseException] = []
    current: BaseException | None = refused.value
    while current is not None and len(chain) < 5:
        chain.append(current)
        current = current.__cause__
    assert any(isinstance(e, asyncpg.TooManyConnectionsError) for e in chain)
