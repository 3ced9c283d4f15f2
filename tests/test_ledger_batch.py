"""The batch posting path: many entries in one transaction with the single path's invariants,
idempotency per entry key, per-entry rejections and the same outbox events."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from sqlalchemy import text

from activities import ledger
from activities.ledger import LedgerError
from activities.ledger.batch import post_entries
from core.db import SessionFactory
from models.ledger.payloads import (
    BatchEntryStatus,
    EntryLeg,
    PostEntryBatchInput,
    PostEntryInput,
)
from tests.ledger_support import (
    assert_ledger_ok,
    balances,
    funded_account,
    new_user,
    run,
    snapshot,
)
from tests.test_ledger_verify_cli import vortex


def move(key: str, src: uuid.UUID, dst: uuid.UUID, amount: int, cur: str = "EUR") -> PostEntryInput:
    """A two-leg entry moving `amount` from src to dst."""
    return PostEntryInput(
        idempotency_key=key,
        kind="migration",
        description="opening",
        legs=[
            EntryLeg(account_id=src, amount=-amount, currency=cur),
            EntryLeg(account_id=dst, amount=amount, currency=cur),
        ],
    )


async def two_accounts(
    sessions: SessionFactory, funded: int = 1_000
) -> tuple[uuid.UUID, uuid.UUID]:
    owner = await new_user(sessions)
    return (
        await funded_account(sessions, owner, funded),
        await funded_account(sessions, owner, 0, name="Savings"),
    )


async def test_a_batch_posts_every_entry_and_balances_follow_in_order(
    sessions: SessionFactory,
) -> None:
    a, b = await two_accounts(sessions)
    batch = PostEntryBatchInput(
        entries=[move(f"k{i}", a, b, 100) for i in range(5)] + [move("back", b, a, 250)]
    )

    result = await run(sessions, post_entries, batch)

    assert (result.posted, result.replayed, result.rejected) == (6, 0, 0)
    # each entry saw the balance its predecessors left
    assert [r.entry.postings[0].balance_after for r in result.results if r.entry] == [
        900,
        800,
        700,
        600,
        500,
        250,
    ]
    assert await balances(sessions, a, b) == [(750, 0), (250, 0)]
    await assert_ledger_ok(sessions)


async def test_a_retried_batch_returns_the_first_results_and_writes_nothing(
    sessions: SessionFactory,
) -> None:
    a, b = await two_accounts(sessions)
    batch = PostEntryBatchInput(entries=[move(f"r{i}", a, b, 10 + i) for i in range(4)])
    first = await run(sessions, post_entries, batch)
    before = await snapshot(sessions)

    again = await run(sessions, post_entries, batch)

    assert again.replayed == 4
    assert again.posted == 0
    assert [r.entry for r in again.results] == [r.entry for r in first.results]
    assert await snapshot(sessions) == before


async def test_a_batch_replays_an_entry_the_single_path_posted_under_the_same_key(
    sessions: SessionFactory,
) -> None:
    a, b = await two_accounts(sessions)
    single = await run(sessions, ledger.post_entry, move("shared", a, b, 42))

    result = await run(
        sessions, post_entries, PostEntryBatchInput(entries=[move("shared", a, b, 42)])
    )

    assert result.results[0].status is BatchEntryStatus.REPLAYED
    assert result.results[0].entry == single


async def test_duplicate_keys_within_a_batch_post_once(sessions: SessionFactory) -> None:
    a, b = await two_accounts(sessions)
    batch = PostEntryBatchInput(
        entries=[move("dup", a, b, 100), move("dup", a, b, 100), move("dup", a, b, 999)]
    )

    result = await run(sessions, post_entries, batch)

    statuses = [r.status for r in result.results]
    assert statuses == [
        BatchEntryStatus.POSTED,
        BatchEntryStatus.REPLAYED,
        BatchEntryStatus.REJECTED,
    ]
    assert result.results[1].entry == result.results[0].entry
    assert result.results[2].error_type == ledger.IDEMPOTENCY_KEY_REUSED
    assert await balances(sessions, a, b) == [(900, 0), (100, 0)]


async def test_invalid_entries_are_rejected_alone_and_valid_ones_post(
    sessions: SessionFactory,
) -> None:
    a, b = await two_accounts(sessions, funded=300)
    other_owner = await new_user(sessions, "bob")
    usd = await funded_account(sessions, other_owner, 0, currency="USD")
    unbalanced = PostEntryInput(
        idempotency_key="unbalanced",
        legs=[
            EntryLeg(account_id=a, amount=-5, currency="EUR"),
            EntryLeg(account_id=b, amount=4, currency="EUR"),
        ],
    )
    batch = PostEntryBatchInput(
        entries=[
            move("ok-1", a, b, 200),
            move("overdraft", a, b, 200),  # only 100 left after ok-1
            unbalanced,
            move("currency", a, usd, 10),  # EUR leg on a USD account
            move("unknown", a, uuid.uuid4(), 10),
            move("bad-currency", a, b, 10, cur="XXX1"),
            move("ok-2", a, b, 100),  # fits: the refused overdraft changed nothing
        ]
    )

    result = await run(sessions, post_entries, batch)

    assert {r.idempotency_key: r.error_type for r in result.results} == {
        "ok-1": None,
        "overdraft": ledger.INSUFFICIENT_FUNDS,
        "unbalanced": ledger.UNBALANCED_ENTRY,
        "currency": ledger.CURRENCY_MISMATCH,
        "unknown": ledger.UNKNOWN_ACCOUNT,
        "bad-currency": ledger.UNKNOWN_CURRENCY,
        "ok-2": None,
    }
    assert (result.posted, result.rejected) == (2, 5)
    assert await balances(sessions, a, b) == [(0, 0), (300, 0)]
    async with sessions() as session:
        keys = set(
            (await session.execute(text("SELECT idempotency_key FROM journal_entries"))).scalars()
        )
    assert "overdraft" not in keys
    assert "currency" not in keys
    await assert_ledger_ok(sessions)


async def test_an_atomic_batch_with_one_bad_entry_changes_nothing(
    sessions: SessionFactory,
) -> None:
    a, b = await two_accounts(sessions, funded=100)
    before = await snapshot(sessions)
    batch = PostEntryBatchInput(
        entries=[move("fine", a, b, 50), move("too-much", a, b, 80)], atomic=True
    )

    with pytest.raises(LedgerError) as caught:
        await run(sessions, post_entries, batch)

    assert caught.value.type == ledger.INSUFFICIENT_FUNDS
    assert caught.value.info["idempotency_key"] == "too-much"
    assert await snapshot(sessions) == before


async def test_a_batch_writes_the_same_events_as_the_single_path(
    sessions: SessionFactory,
) -> None:
    a, b = await two_accounts(sessions)
    async with sessions() as session:
        start = (await session.execute(text("SELECT coalesce(max(id), 0) FROM outbox"))).scalar()
    await run(sessions, ledger.post_entry, move("single", a, b, 7))
    async with sessions() as session:
        mid = (await session.execute(text("SELECT max(id) FROM outbox"))).scalar()
    await run(
        sessions,
        post_entries,
        PostEntryBatchInput(entries=[move(f"b{i}", a, b, 7) for i in range(3)]),
    )

    async with sessions() as session:
        rows = (
            await session.execute(
                text("SELECT id, type, payload FROM outbox WHERE id > :s ORDER BY id"), {"s": start}
            )
        ).all()
    single = Counter(r.type for r in rows if r.id <= mid)
    batched = Counter(r.type for r in rows if r.id > mid)
    assert single == Counter({"transaction.created": 2, "balance.updated": 2})
    assert batched == Counter({k: 3 * v for k, v in single.items()})
    posted_after = [
        r.payload["posted"]
        for r in rows
        if r.id > mid and r.type == "balance.updated" and r.payload["account_id"] == str(a)
    ]
    assert posted_after == [986, 979, 972]  # each entry's event carries its own balance


async def test_ledger_verify_passes_after_a_batch(
    sessions: SessionFactory, database_url: str
) -> None:
    a, b = await two_accounts(sessions)
    await run(
        sessions,
        post_entries,
        PostEntryBatchInput(entries=[move(f"v{i}", a, b, 3) for i in range(50)]),
    )

    code, out = await vortex(database_url, "ledger", "verify")

    assert code == 0, out
    assert "OK" in out


async def test_batches_and_single_postings_on_the_same_accounts_run_side_by_side(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)
    a = await funded_account(sessions, owner, 10_000)
    # funded too: a single posting may run before any batch has credited b
    b = await funded_account(sessions, owner, 1_000, name="Savings")
    batches = [
        PostEntryBatchInput(entries=[move(f"c{n}-{i}", a, b, 10) for i in range(20)])
        for n in range(3)
    ]
    singles = [move(f"s{i}", b, a, 5) for i in range(10)]

    await asyncio.gather(
        *(run(sessions, post_entries, batch) for batch in batches),
        *(run(sessions, ledger.post_entry, entry) for entry in singles),
    )

    assert await balances(sessions, a, b) == [(10_000 - 600 + 50, 0), (1_000 + 600 - 50, 0)]
    await assert_ledger_ok(sessions)
