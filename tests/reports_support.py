"""Helpers of the monthly report tests: many customers seeded by SQL, a month of transactions
for some of them, and reading the reports and their events back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from core.db import SessionFactory, transaction

MONTH = "2026-10"
MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)

_USERS = text(
    """
WITH u AS (
    INSERT INTO users (id, email, first_name, last_name, password_hash, status, mfa_enabled)
    SELECT gen_random_uuid(), 'customer-' || g || '-' || CAST(:tag AS text) || '@example.com',
        'Customer', 'Number ' || g, 'not-a-real-hash', 'active', false
    FROM generate_series(1, CAST(:n AS int)) AS g
    RETURNING id
)
INSERT INTO ledger_accounts (id, kind, type, owner_user_id, name, number, currency, status,
    opened_at)
SELECT gen_random_uuid(), 'customer', 'checking', u.id, 'Main',
    CAST(900000000000 + CAST(:base AS bigint) + g AS text), 'EUR', 'open',
    TIMESTAMPTZ '2026-01-01 00:00+00'
FROM (SELECT id, row_number() OVER () AS g FROM u) AS u
RETURNING owner_user_id, id
"""
)


async def seed_customers(sessions: SessionFactory, n: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """`n` active customers with one EUR account opened in January 2026: (user, account)."""
    async with transaction(sessions) as session:
        base = uuid.uuid4().int % 90_000_000_000
        rows = await session.execute(_USERS, {"n": n, "tag": uuid.uuid4().hex[:8], "base": base})
        return [(r.owner_user_id, r.id) for r in rows]


_MONTH_ROWS = text(
    """
INSERT INTO transactions (id, account_id, user_id, kind, amount, currency, direction, status,
    description, merchant, category, occurred_at)
VALUES
    (gen_random_uuid(), :a, :u, 'funding', 300000, 'EUR', 'credit', 'posted', 'Salary', NULL,
        'salary', TIMESTAMPTZ '2026-10-01 09:00+00'),
    (gen_random_uuid(), :a, :u, 'card', 4250, 'EUR', 'debit', 'posted', 'Lunch', 'Bistro',
        'dining', TIMESTAMPTZ '2026-10-03 12:00+00'),
    (gen_random_uuid(), :a, :u, 'card', 12000, 'EUR', 'debit', 'posted', 'Weekly shop',
        'Tesco', 'groceries', TIMESTAMPTZ '2026-10-05 18:00+00'),
    (gen_random_uuid(), :a, :u, 'card', 9800, 'EUR', 'debit', 'posted', 'Weekly shop',
        'Tesco', 'groceries', TIMESTAMPTZ '2026-10-12 18:00+00'),
    (gen_random_uuid(), :a, :u, 'card', 85000, 'EUR', 'debit', 'posted', 'Rent', 'Landlord',
        'utilities', TIMESTAMPTZ '2026-10-02 08:00+00'),
    (gen_random_uuid(), :a, :u, 'card', 2400, 'EUR', 'debit', 'posted', 'Metro', 'TfL',
        'transport', TIMESTAMPTZ '2026-10-20 08:00+00'),
    (gen_random_uuid(), :a, :u, 'card', 99999, 'EUR', 'debit', 'pending', 'Not yet', 'Shop',
        'shopping', TIMESTAMPTZ '2026-10-21 08:00+00'),
    (gen_random_uuid(), :a, :u, 'card', 7000, 'EUR', 'debit', 'posted', 'Last month',
        'Bistro', 'dining', TIMESTAMPTZ '2026-09-28 20:00+00')
"""
)


async def seed_month(sessions: SessionFactory, user_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """October 2026 for one customer (and one September row for the comparison)."""
    async with transaction(sessions) as session:
        await session.execute(_MONTH_ROWS, {"a": account_id, "u": user_id})


async def reports_of(sessions: SessionFactory) -> list[Any]:
    """Every stored report row."""
    async with sessions() as session:
        return list(
            await session.execute(
                text("SELECT id, user_id, month, status, figures, narrative FROM monthly_reports")
            )
        )


async def outbox_count(sessions: SessionFactory, event_type: str) -> int:
    """How many outbox rows of a type exist."""
    async with sessions() as session:
        return int(
            await session.scalar(
                text("SELECT count(*) FROM outbox WHERE type = :t"), {"t": event_type}
            )
            or 0
        )
