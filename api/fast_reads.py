"""The dashboard's hot reads, without the ORM's per-request work.

Each query is a SQLAlchemy Core statement over the models' own columns, compiled once at import
to PostgreSQL's `$n` form and run on a plain asyncpg pool (`Services.read_pool`): no session, no
identity map, no statement construction, cache-key or greenlet hop per request, and asyncpg
keeps each statement prepared per connection. Reads only, one statement each, in autocommit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import asyncpg
from sqlalchemy import Text
from sqlalchemy import cast as cast_sql
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import Label

_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
T = TypeVar("T")


class ReadQuery:
    """A SELECT compiled once; `fetch(pool, name=value, ...)` fills its bind parameters."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self._order: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Literal values in the statement (enums, constants) travel as bind parameters too.
        self._defaults = {
            name: getattr(value, "value", value) for name, value in compiled.params.items()
        }

    async def fetch(self, pool: asyncpg.Pool, **params: Any) -> list[asyncpg.Record]:
        """Run the query; every parameter must be given or have a value in the statement."""
        values = self._defaults | params
        args = [values[name] for name in self._order]
        async with pool.acquire() as connection:
            return cast(list[asyncpg.Record], await connection.fetch(self.sql, *args))


def as_text(column: Any) -> Label[str]:
    """A UUID column read as its text under its own name: PostgreSQL writes the text, and the
    views serialize it as is (asyncpg's UUID type would need a Python call per value)."""
    return cast_sql(column, Text).label(column.key)


class _RecordAttributes:
    """Attribute access over a record, so the views built from model rows build from it."""

    __slots__ = ("_record",)

    def __init__(self, record: asyncpg.Record) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


def rows_as(model: type[T], records: Sequence[asyncpg.Record]) -> list[T]:
    """The records as read-only stand-ins for `model` rows (same column names), for view
    builders that read attributes. Only reading selected columns is possible."""
    del model  # only the type: the stand-ins are not model instances
    return [cast(T, _RecordAttributes(record)) for record in records]


async def no_reset(connection: asyncpg.Connection) -> None:
    """The read pool's release hook: nothing to reset, since its connections only ever run
    single autocommit SELECTs (no SET, LISTEN, advisory lock or cursor outlives a query);
    asyncpg's default reset costs a round trip on every release."""


async def create_read_pool(dsn: str, *, max_size: int, connect_timeout: float) -> asyncpg.Pool:
    """The API's pool for `ReadQuery`s; it connects on first use (an API started while the
    database is down answers 503 until it is back, as on the ORM's pool)."""
    pool = await asyncpg.create_pool(
        dsn, min_size=0, max_size=max_size, reset=no_reset, timeout=connect_timeout
    )
    assert pool is not None
    return pool
