"""The transactions export, streamed: keyset batches in (occurred_at, id) order, each rendered
and sent before the next is read, so memory stays bounded whatever the row count.

Each batch is one short query on a pooled connection (no transaction held open for the whole
download): a row committed during the download may appear if it sorts after the cursor.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import asyncpg

from models.money import format_amount

BATCH = 2000
COLUMNS = (
    "id",
    "occurred_at",
    "account_id",
    "kind",
    "direction",
    "status",
    "amount",
    "amount_minor",
    "currency",
    "category",
    "merchant",
    "counterparty",
    "description",
)
ExportFormat = Literal["csv", "json"]

_PAGE = (
    "SELECT id, occurred_at, account_id, kind, direction, status, amount, currency, category, "
    "merchant, counterparty, description FROM transactions "
    "WHERE user_id = $1 AND occurred_at >= $2 AND occurred_at < $3 "
    "AND (occurred_at, id) > ($4, $5) ORDER BY occurred_at, id LIMIT $6"
)
_NIL = uuid.UUID(int=0)


def _record(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "occurred_at": row["occurred_at"].isoformat(),
        "account_id": str(row["account_id"]),
        "kind": row["kind"],
        "direction": row["direction"],
        "status": row["status"],
        "amount": format_amount(int(row["amount"]), row["currency"]),
        "amount_minor": int(row["amount"]),
        "currency": row["currency"],
        "category": row["category"],
        "merchant": row["merchant"],
        "counterparty": row["counterparty"],
        "description": row["description"],
    }


def _csv_safe(value: object) -> object:
    """Spreadsheet formula injection: a text cell starting with = + - @ is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def batches(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    start: datetime,
    end: datetime,
    batch: int = BATCH,
) -> AsyncIterator[list[dict[str, Any]]]:
    """The user's transactions in [start, end), oldest first, `batch` rows at a time."""
    after_at, after_id = datetime.min.replace(tzinfo=start.tzinfo), _NIL
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(_PAGE, user_id, start, end, after_at, after_id, batch)
        if not rows:
            return
        yield [_record(r) for r in rows]
        if len(rows) < batch:
            return
        after_at, after_id = rows[-1]["occurred_at"], rows[-1]["id"]


async def render(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    start: datetime,
    end: datetime,
    fmt: ExportFormat,
    batch: int = BATCH,
) -> AsyncIterator[bytes]:
    """The export as chunks of bytes: a CSV with a header row, or one JSON array."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        yield buffer.getvalue().encode()
        async for rows in batches(pool, user_id, start, end, batch):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows([_csv_safe(r[c]) for c in COLUMNS] for r in rows)
            yield buffer.getvalue().encode()
        return
    yield b"["
    first = True
    async for rows in batches(pool, user_id, start, end, batch):
        body = ",".join(json.dumps(r, separators=(",", ":")) for r in rows)
        yield (body if first else "," + body).encode()
        first = False
    yield b"]"
