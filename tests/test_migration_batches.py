# ruff: noqa: F811 - pytest fixtures imported from tests.migration_support are parameter names
"""Backfill pages of users and accounts, imported set-based: the same outcome per row as the
row-by-row import (duplicates, quarantines, owners, the ledger's refusals), in one batch."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import bcrypt
from sqlalchemy import text

from activities.ledger import open_account
from activities.ledger.verify import verify_ledger
from activities.migration.batches import backfill_batch
from activities.migration.legacy import LegacyDatabase
from core.db import SessionFactory, transaction
from legacysim.schema import legacy_dsn
from models.ledger.payloads import OpenAccountInput
from models.migration.payloads import BatchInput
from models.migration.tables import MigrationDomain
from tests.ledger_support import new_user
from tests.migration_support import legacy_url  # noqa: F401 - fixture

DIGEST = bcrypt.hashpw(b"old-password", bcrypt.gensalt(rounds=4)).decode()


async def _legacy(url: str, sql: str, rows: list[tuple[object, ...]]) -> None:
    conn = await asyncpg.connect(legacy_dsn(url))
    try:
        await conn.executemany(sql, rows)
    finally:
        await conn.close()


async def _users(url: str, emails: list[str], digest: str = DIGEST) -> None:
    await _legacy(
        url,
        "INSERT INTO users (email, password_digest, full_name) VALUES ($1, $2, $3)",
        [(email, digest, f"Customer {i}") for i, email in enumerate(emails)],
    )


async def _new_side_user(sessions: SessionFactory, email: str) -> None:
    user_id = await new_user(sessions)
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE users SET email = :email WHERE id = :id"), {"email": email, "id": user_id}
        )


async def _page(sessions: SessionFactory, url: str, domain: MigrationDomain) -> None:
    result = await backfill_batch(
        sessions, LegacyDatabase(url), BatchInput(domain=domain, after_id=0, limit=200)
    )
    assert result.done


async def _rows(sessions: SessionFactory, sql: str) -> set[tuple[object, ...]]:
    async with sessions() as session:
        return {tuple(row) for row in await session.execute(text(sql))}


async def test_a_users_page_imports_each_email_once_and_quarantines_the_rest(
    sessions: SessionFactory,
    legacy_url: str,
) -> None:
    await _new_side_user(sessions, "Taken@example.com")  # registered on the new side already
    await _users(
        legacy_url,
        ["Ada@Example.com", "ada@example.com", "taken@example.com", "not-an-email", "bo@x.org"],
    )
    await _users(legacy_url, ["md5@example.com"], digest="5f4dcc3b5aa765d61d8327deb882cf99")

    await _page(sessions, legacy_url, MigrationDomain.USERS)

    migrated = await _rows(
        sessions,
        "SELECT m.legacy_id, u.email, u.status, u.password_hash LIKE '$2%', r.status FROM "
        "migration_identities m JOIN users u ON u.id = m.new_id "
        "JOIN registrations r ON r.user_id = u.id WHERE m.domain = 'users'",
    )
    assert migrated == {
        (1, "ada@example.com", "pending", True, "awaiting_mfa"),
        (5, "bo@x.org", "pending", True, "awaiting_mfa"),
    }
    quarantined = await _rows(
        sessions, "SELECT legacy_id, reason FROM migration_quarantine WHERE domain = 'users'"
    )
    assert quarantined == {
        (2, "duplicate_email"),  # the same address as row 1, in another case
        (3, "duplicate_email"),
        (4, "bad_email"),
        (6, "unsupported_password_hash"),
    }

    await _page(sessions, legacy_url, MigrationDomain.USERS)  # a retried page adds nothing
    assert len(await _rows(sessions, "SELECT id FROM users")) == 3


async def test_an_accounts_page_opens_accounts_with_their_balances_in_one_batch(
    sessions: SessionFactory,
    legacy_url: str,
) -> None:
    await _users(legacy_url, ["a@example.com", "b@example.com"])
    await _page(sessions, legacy_url, MigrationDomain.USERS)
    await _legacy(
        legacy_url,
        "INSERT INTO users (email, password_digest) VALUES ($1, $2)",
        [("late@example.com", DIGEST)],  # not migrated yet: its account waits in quarantine
    )
    await _legacy(
        legacy_url,
        "INSERT INTO accounts (user_id, name, kind, currency, balance) VALUES ($1, $2, $3, $4, $5)",
        [
            (1, "Main", "checking", "EUR", Decimal("120.50")),
            (1, "Rainy day", "savings", "eur", Decimal("0")),
            (2, "Dollars", "checking", "USD", Decimal("7.00")),
            (3, "Late", "checking", "EUR", Decimal("1.00")),
        ],
    )

    await _page(sessions, legacy_url, MigrationDomain.ACCOUNTS)

    balances = await _rows(
        sessions,
        "SELECT m.legacy_id, a.currency, a.type, a.posted FROM migration_identities m "
        "JOIN ledger_accounts a ON a.id = m.new_id WHERE m.domain = 'accounts'",
    )
    assert balances == {
        (1, "EUR", "checking", 12050),
        (2, "EUR", "savings", 0),
        (3, "USD", "checking", 700),
    }
    assert await _rows(sessions, "SELECT legacy_id, reason FROM migration_quarantine") == {
        (4, "owner_not_migrated")
    }
    opened_events = await _rows(
        sessions, "SELECT aggregate_id FROM outbox WHERE type = 'account.opened'"
    )
    assert len(opened_events) == 3
    assert (await verify_ledger(sessions)).ok

    await _page(sessions, legacy_url, MigrationDomain.ACCOUNTS)  # retried: nothing twice
    assert len(await _rows(sessions, "SELECT id FROM ledger_accounts WHERE kind = 'customer'")) == 3


async def test_a_page_the_ledger_refuses_in_part_goes_row_by_row_and_keeps_the_others(
    sessions: SessionFactory,
    legacy_url: str,
) -> None:
    await _users(legacy_url, ["a@example.com"])
    await _page(sessions, legacy_url, MigrationDomain.USERS)
    await _legacy(
        legacy_url,
        "INSERT INTO accounts (user_id, currency, balance) VALUES ($1, $2, $3)",
        [(1, "EUR", Decimal("10.00")), (1, "EUR", Decimal("20.00"))],
    )
    # Account 2's opening key is already taken by another request: the ledger refuses it.
    other = await new_user(sessions)
    async with transaction(sessions) as session:
        await open_account(
            session,
            OpenAccountInput(
                idempotency_key="migration:account:2:open",
                owner_user_id=other,
                currency="GBP",
                name="Elsewhere",
            ),
        )

    await _page(sessions, legacy_url, MigrationDomain.ACCOUNTS)

    migrated = await _rows(
        sessions,
        "SELECT m.legacy_id, a.posted FROM migration_identities m "
        "JOIN ledger_accounts a ON a.id = m.new_id WHERE m.domain = 'accounts'",
    )
    assert migrated == {(1, 1000)}
    reasons = await _rows(sessions, "SELECT legacy_id, reason FROM migration_quarantine")
    assert len(reasons) == 1
    legacy_id, reason = next(iter(reasons))
    assert legacy_id == 2
    assert str(reason).startswith("ledger_")
    assert (await verify_ledger(sessions)).ok
