"""The ledger's references, checked per statement by triggers (decision 90): the database refuses
a posting or a transaction that refers to nothing, and `verify` finds one written past them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from activities import ledger
from activities.ledger.verify import format_report, verify_ledger
from core.db import SessionFactory, transaction
from models.ledger.payloads import LedgerTransferInput
from tests.ledger_support import assert_ledger_ok, funded_account, funded_pair, new_user

_POSTINGS = (
    "INSERT INTO postings (entry_id, account_id, amount, currency, balance_after) "
    "VALUES (:entry, :a, -5, 'EUR', 0), (:entry, :b, 5, 'EUR', 0)"
)
_TRANSACTION = (
    "INSERT INTO transactions (id, account_id, user_id, journal_entry_id, kind, amount, "
    "currency, direction, status, description, occurred_at, created_at, updated_at) VALUES "
    "(:id, :account, :user, :entry, 'transfer', 5, 'EUR', 'credit', 'posted', '', now(), now(), "
    "now())"
)


_ENTRY = (
    "INSERT INTO journal_entries (id, idempotency_key, request_hash, kind, description) "
    "VALUES (:entry, :key, 'x', 'raw', '')"
)


async def _refused(sessions: SessionFactory, params: Mapping[str, object], *sql: str) -> str:
    """Run the statements in one transaction, which the database must refuse."""

    async def run_all() -> None:
        async with transaction(sessions) as session:
            for statement in sql:
                await session.execute(text(statement), params)

    with pytest.raises(DBAPIError) as caught:
        await run_all()
    return str(caught.value)


async def test_database_refuses_rows_that_refer_to_a_missing_entry_account_or_owner(
    sessions: SessionFactory,
) -> None:
    owner, a, b = await funded_pair(sessions)
    stranger = await new_user(sessions)
    nowhere = uuid.uuid4()
    transaction_cases: list[dict[str, uuid.UUID | None]] = [
        {"account": nowhere, "user": owner, "entry": None},  # no such account
        {"account": a, "user": stranger, "entry": None},  # a user who does not own the account
        {"account": a, "user": owner, "entry": nowhere},  # no such journal entry
    ]

    no_entry = await _refused(sessions, {"entry": nowhere, "a": a, "b": b}, _POSTINGS)
    fresh = uuid.uuid4()  # a new entry, in the same transaction, to a missing account
    no_account = await _refused(
        sessions, {"entry": fresh, "key": f"raw-{fresh}", "a": a, "b": nowhere}, _ENTRY, _POSTINGS
    )
    assert f"journal entry {nowhere}, which does not exist" in no_entry
    assert f"account {nowhere}, which does not exist" in no_account
    for params in transaction_cases:
        message = await _refused(sessions, {"id": uuid.uuid4(), **params}, _TRANSACTION)
        assert "does not exist" in message
    await assert_ledger_ok(sessions)


async def test_database_refuses_moving_a_transaction_or_renumbering_an_account(
    sessions: SessionFactory,
) -> None:
    _, a, b = await funded_pair(sessions)
    stranger = await new_user(sessions)
    async with transaction(sessions) as session:
        moved = await ledger.transfer(
            session,
            LedgerTransferInput(
                idempotency_key=f"refs-{uuid.uuid4()}",
                from_account_id=a,
                to_account_id=b,
                amount=100,
                currency="EUR",
            ),
        )
    spent = moved.postings[0].transaction_id

    for sql, params in (
        ("UPDATE transactions SET user_id = :v WHERE id = :id", {"v": stranger, "id": spent}),
        (
            "UPDATE transactions SET journal_entry_id = :v WHERE id = :id",
            {"v": uuid.uuid4(), "id": spent},
        ),
        ("UPDATE ledger_accounts SET id = :v WHERE id = :id", {"v": uuid.uuid4(), "id": a}),
    ):
        await _refused(sessions, params, sql)
    await assert_ledger_ok(sessions)


async def test_verify_names_rows_whose_references_were_broken_past_the_triggers(
    sessions: SessionFactory,
) -> None:
    owner, stranger = await new_user(sessions), await new_user(sessions)
    a = await funded_account(sessions, owner, 1_000, name="A")
    async with transaction(sessions) as session:  # corruption the application never writes
        await session.execute(text("ALTER TABLE transactions DISABLE TRIGGER transactions_refer"))
        await session.execute(
            text(_TRANSACTION), {"id": uuid.uuid4(), "account": a, "user": stranger, "entry": None}
        )
        await session.execute(text("ALTER TABLE transactions ENABLE TRIGGER transactions_refer"))

    report = await verify_ledger(sessions)

    assert not report.ok
    assert report.rows_with_broken_references == 1
    assert "1 postings or transactions refer to" in format_report(report)
