"""Manual entries: a customer's own note of money spent or received outside the bank.

A memo is a `transactions` row with status `memo` and kind `manual` that points at no journal
entry and no hold (a CHECK constraint says so), so it can never change a balance. It is
idempotent on the client's Idempotency-Key, stored as the row's `external_id` under the `memo:`
prefix, which the processor feed refuses for its own ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.categorize import categorize
from models.base import utcnow
from models.ledger.tables import (
    TRANSACTION_EVENTS_TOPIC,
    Direction,
    OutboxEvent,
    Transaction,
    TransactionStatus,
)

MEMO_KIND = "manual"
MEMO_ID_PREFIX = "memo:"
# The fields a retry must repeat exactly; anything else under the same key is a different note.
_SAME_REQUEST = ("amount", "currency", "direction", "description", "merchant", "counterparty")


@dataclass(frozen=True)
class Memo:
    """A validated manual entry (amount in minor units, category resolved)."""

    account_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    direction: Direction
    description: str
    merchant: str | None
    counterparty: str | None
    category: str | None
    occurred_at: datetime | None


def memo_external_id(key_digest: str) -> str:
    """The `external_id` a memo is stored under for this Idempotency-Key digest."""
    return f"{MEMO_ID_PREFIX}{key_digest[:40]}"


def _row(memo: Memo, external_id: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "account_id": memo.account_id,
        "user_id": memo.user_id,
        "journal_entry_id": None,
        "hold_id": None,
        "kind": MEMO_KIND,
        "amount": memo.amount,
        "currency": memo.currency,
        "direction": memo.direction.value,
        "status": TransactionStatus.MEMO.value,
        "counterparty": memo.counterparty,
        "description": memo.description,
        "merchant": memo.merchant,
        "category": memo.category
        or categorize(memo.merchant, memo.description, direction=memo.direction.value),
        "external_id": external_id,
        "occurred_at": memo.occurred_at or now,
        "created_at": now,
        "updated_at": now,
    }


def same_request(row: Transaction, memo: Memo) -> bool:
    """Whether a stored memo is the one this request describes (a retry, not a key reuse)."""
    wanted = {
        "amount": memo.amount,
        "currency": memo.currency,
        "direction": memo.direction,
        "description": memo.description,
        "merchant": memo.merchant,
        "counterparty": memo.counterparty,
    }
    return all(getattr(row, name) == wanted[name] for name in _SAME_REQUEST) and (
        memo.category is None or row.category == memo.category
    )


async def add_memo(session: AsyncSession, memo: Memo, key_digest: str) -> tuple[Transaction, bool]:
    """Insert the memo for this key, or return the one already there; (row, created)."""
    external_id = memo_external_id(key_digest)
    values = _row(memo, external_id)
    inserted = (
        await session.execute(
            insert(Transaction)
            .values(values)
            .on_conflict_do_nothing(
                index_elements=["account_id", "external_id"],
                index_where=text("external_id IS NOT NULL"),
            )
            .returning(col(Transaction.id))
        )
    ).scalar_one_or_none()
    row = (
        await session.execute(
            select(Transaction).where(
                col(Transaction.account_id) == memo.account_id,
                col(Transaction.external_id) == external_id,
            )
        )
    ).scalar_one()
    if inserted is not None:
        payload = {
            k: str(v) if isinstance(v, uuid.UUID | datetime) else v for k, v in values.items()
        }
        session.add(
            OutboxEvent(
                topic=TRANSACTION_EVENTS_TOPIC,
                type="transaction.created",
                aggregate_id=memo.account_id,
                user_id=memo.user_id,
                payload={k: v for k, v in payload.items() if k not in ("created_at", "updated_at")},
            )
        )
    return row, inserted is not None


async def delete_memo(session: AsyncSession, row: Transaction) -> None:
    """Remove a memo (only memos: a row that moved money is history and stays)."""
    if row.status != TransactionStatus.MEMO:
        raise ValueError("only memos can be deleted")
    await session.delete(row)
    session.add(
        OutboxEvent(
            topic=TRANSACTION_EVENTS_TOPIC,
            type="transaction.deleted",
            aggregate_id=row.account_id,
            user_id=row.user_id,
            payload={"id": str(row.id), "account_id": str(row.account_id)},
        )
    )
