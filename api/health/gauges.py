"""Gauges read from PostgreSQL at scrape time: true whichever process did the work."""

from __future__ import annotations

import asyncpg
from prometheus_client import Gauge

from models.payments.tables import OPEN_PAYMENTS_SQL, PaymentStatus

PAYMENTS_OPEN = Gauge(
    "vortex_payments_open",
    "Payments not yet final, by status (requires_action: waiting for ops or the customer)",
    ["status"],
)
_OPEN_STATUSES = [s.value for s in PaymentStatus if not s.is_terminal]
# Served by the partial index ix_payments_open_status: terminal rows are never read.
_OPEN_COUNTS = (
    "SELECT status, count(*) FROM payments WHERE "  # noqa: S608 - a constant predicate
    + OPEN_PAYMENTS_SQL
    + " GROUP BY status"
)


async def read_payment_gauges(pool: asyncpg.Pool) -> None:
    """Set `vortex_payments_open{status}` for every non-final status (0 when none)."""
    counts = {str(row[0]): int(row[1]) for row in await pool.fetch(_OPEN_COUNTS)}
    for status in _OPEN_STATUSES:
        PAYMENTS_OPEN.labels(status=status).set(counts.get(status, 0))
