"""Changes to the customer-facing transactions read model that move no money."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger.errors import UNKNOWN_TRANSACTION, LedgerError
from activities.ledger.events import _transaction_event, _write_events
from activities.ledger.sql import _RECATEGORIZE
from activities.ledger.validation import _category
from models.base import utcnow
from models.ledger.payloads import (
    RecategorizeInput,
    TransactionRecord,
)


async def recategorize_transaction(
    session: AsyncSession, req: RecategorizeInput
) -> TransactionRecord:
    """Set the category of a transaction (naturally idempotent; emits transaction.updated)."""
    category = _category(req.category)
    conn = await session.connection()
    now = utcnow()
    params = {
        "category": category,
        "now": now,
        "id": req.transaction_id,
        "owner": req.owner_user_id,
    }
    rows = (await conn.execute(_RECATEGORIZE, params)).mappings().all()
    if not rows:
        raise LedgerError(
            UNKNOWN_TRANSACTION, "unknown transaction", transaction_id=str(req.transaction_id)
        )
    view = TransactionRecord.model_validate(dict(rows[0]))
    if view.updated_at == now:
        await _write_events(conn, [_transaction_event("transaction.updated", rows[0])], now)
    return view
