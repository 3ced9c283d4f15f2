"""Helpers shared by the ledger tests: users, accounts, funding and whole-ledger snapshots."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import text

from activities import ledger
from activities.ledger.verify import LedgerReport, verify_ledger
from core.db import SessionFactory, transaction
from models.identity.tables import User, UserStatus
from models.ledger.payloads import (
    EntryResult,
    FundAccountInput,
    OpenAccountInput,
    OpenedAccount,
)

Req = TypeVar("Req", bound=BaseModel)
Res = TypeVar("Res", bound=BaseModel)


async def run(
    sessions: SessionFactory,
    operation: Callable[[Any, Req], Awaitable[Res]],
    req: Req,
) -> Res:
    """Run one ledger operation in its own transaction (what an activity does)."""
    async with transaction(sessions) as session:
        return await operation(session, req)


async def new_user(sessions: SessionFactory, name: str = "ada") -> uuid.UUID:
    """An active user with a unique email."""
    user = User(
        email=f"{name}-{uuid.uuid4().hex[:8]}@example.com",
        first_name=name.title(),
        last_name="Tester",
        password_hash="not-a-real-hash",
        status=UserStatus.ACTIVE,
    )
    async with transaction(sessions) as session:
        session.add(user)
    return user.id


async def open_account(
    sessions: SessionFactory,
    owner: uuid.UUID,
    currency: str = "EUR",
    name: str = "Main",
) -> OpenedAccount:
    """Open a checking account."""
    return await run(
        sessions,
        ledger.open_account,
        OpenAccountInput(
            idempotency_key=f"open-{uuid.uuid4()}",
            owner_user_id=owner,
            currency=currency,
            name=name,
        ),
    )


async def fund(
    sessions: SessionFactory, account_id: uuid.UUID, amount: int, currency: str = "EUR"
) -> EntryResult:
    """Credit an account from external settlement."""
    return await run(
        sessions,
        ledger.fund_account,
        FundAccountInput(
            idempotency_key=f"fund-{uuid.uuid4()}",
            account_id=account_id,
            amount=amount,
            currency=currency,
            reason="test funding",
        ),
    )


async def funded_account(
    sessions: SessionFactory,
    owner: uuid.UUID,
    amount: int,
    currency: str = "EUR",
    name: str = "Main",
) -> uuid.UUID:
    """Open an account and fund it with `amount` minor units."""
    opened = await open_account(sessions, owner, currency, name)
    if amount:
        await fund(sessions, opened.account_id, amount, currency)
    return opened.account_id


async def funded_pair(sessions: SessionFactory) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """(owner, funded EUR account "A" with 10.00, empty EUR account "B")."""
    owner = await new_user(sessions)
    return (
        owner,
        await funded_account(sessions, owner, 1_000, name="A"),
        await funded_account(sessions, owner, 0, name="B"),
    )


async def balances(sessions: SessionFactory, *account_ids: uuid.UUID) -> list[tuple[int, int]]:
    """(posted, held) of each account, in the order given."""
    async with sessions() as session:
        rows: dict[uuid.UUID, tuple[int, int]] = dict(
            (
                await session.execute(
                    text("SELECT id, (posted, held) FROM ledger_accounts WHERE id = ANY(:ids)"),
                    {"ids": list(account_ids)},
                )
            )
            .tuples()
            .all()
        )
    return [(int(rows[a][0]), int(rows[a][1])) for a in account_ids]


_SNAPSHOT_SQL = {
    "accounts": "SELECT id, status, posted, held FROM ledger_accounts ORDER BY id",
    "entries": "SELECT id FROM journal_entries ORDER BY id",
    "postings": "SELECT id, amount FROM postings ORDER BY id",
    "holds": "SELECT id, status, captured_amount FROM holds ORDER BY id",
    "transactions": "SELECT id, status, amount, category FROM transactions ORDER BY id",
    "outbox": "SELECT id FROM outbox ORDER BY id",
    "audit": "SELECT id FROM audit_log ORDER BY id",
}


async def snapshot(sessions: SessionFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the ledger writes, to assert that a rejected or replayed call changed nothing."""
    async with sessions() as session:
        return {
            name: [tuple(r) for r in (await session.execute(text(sql))).all()]
            for name, sql in _SNAPSHOT_SQL.items()
        }


async def assert_ledger_ok(sessions: SessionFactory) -> LedgerReport:
    """The invariant check passes."""
    report = await verify_ledger(sessions)
    assert report.ok, report.model_dump_json(indent=2)
    return report
