"""A batch that waits for accounts another transaction holds works on what that transaction
committed: balances, events and refusals as if the two had run one after the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities import ledger
from activities.ledger.batch import post_entries
from core.db import SessionFactory, transaction
from models.ledger.payloads import (
    BatchEntryStatus,
    EntryBatchResult,
    LedgerTransferInput,
    PostEntryBatchInput,
)
from tests.ledger_support import (
    assert_ledger_ok,
    balances,
    funded_account,
    funded_pair,
    run,
)
from tests.test_ledger_batch import move


async def _batch_across_a_commit(
    sessions: SessionFactory,
    batch: PostEntryBatchInput,
    hold: Callable[[AsyncSession], Awaitable[object]],
) -> EntryBatchResult:
    """Post `batch` while a transaction doing `hold` keeps the accounts locked: the batch waits
    for that transaction and then works on what it committed."""
    async with transaction(sessions) as holder:
        await hold(holder)
        posting = asyncio.create_task(run(sessions, post_entries, batch))
        async with sessions() as probe:
            for _ in range(500):  # until the batch waits for the holder's row locks
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND query LIKE '%FOR NO KEY UPDATE%'"
                    )
                )
                await probe.rollback()
                if waiting:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the batch never waited for the locks")
    return await posting


def _transfer(
    src: uuid.UUID, dst: uuid.UUID, amount: int
) -> Callable[[AsyncSession], Awaitable[object]]:
    """A transfer made in the holding transaction."""
    return lambda session: ledger.transfer(
        session,
        LedgerTransferInput(
            idempotency_key=f"between-{uuid.uuid4()}",
            from_account_id=src,
            to_account_id=dst,
            amount=amount,
            currency="EUR",
        ),
    )


async def _balance_events(sessions: SessionFactory, account: uuid.UUID) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT payload FROM outbox WHERE type = 'balance.updated' "
                "AND aggregate_id = :a ORDER BY id"
            ),
            {"a": account},
        )
        return [row.payload for row in rows]


async def test_a_batch_follows_balances_a_concurrent_transfer_committed(
    sessions: SessionFactory,
) -> None:
    _, a, b = await funded_pair(sessions)
    batch = PostEntryBatchInput(entries=[move(f"r{i}-{uuid.uuid4()}", a, b, 100) for i in range(3)])

    result = await _batch_across_a_commit(sessions, batch, _transfer(a, b, 400))

    assert result.posted == 3
    # 1,000 - 400 (the transfer that committed in between) - 100 per entry
    assert [r.entry.postings[0].balance_after for r in result.results if r.entry] == [
        500,
        400,
        300,
    ]
    assert [r.entry.postings[1].balance_after for r in result.results if r.entry] == [
        500,
        600,
        700,
    ]
    assert await balances(sessions, a, b) == [(300, 0), (700, 0)]
    last = (await _balance_events(sessions, a))[-1]
    assert (last["posted"], last["held"], last["available"]) == (300, 0, 300)
    await assert_ledger_ok(sessions)


async def test_an_entry_the_concurrent_transfer_left_uncovered_is_refused_alone(
    sessions: SessionFactory,
) -> None:
    _, a, b = await funded_pair(sessions)
    first, second = f"ok-{uuid.uuid4()}", f"short-{uuid.uuid4()}"
    batch = PostEntryBatchInput(entries=[move(first, a, b, 300), move(second, a, b, 300)])

    # Before the transfer both entries fit; after it only 500 are left for them.
    result = await _batch_across_a_commit(sessions, batch, _transfer(a, b, 500))

    assert [r.status for r in result.results] == [
        BatchEntryStatus.POSTED,
        BatchEntryStatus.REJECTED,
    ]
    assert result.results[1].error_type == ledger.INSUFFICIENT_FUNDS
    assert result.results[0].entry is not None
    assert result.results[0].entry.postings[0].balance_after == 200
    assert await balances(sessions, a, b) == [(200, 0), (800, 0)]
    await assert_ledger_ok(sessions)


async def test_an_account_closed_concurrently_refuses_the_batch_entries_on_it(
    sessions: SessionFactory,
) -> None:
    owner, a, b = await funded_pair(sessions)
    c = await funded_account(sessions, owner, 0, name="C")
    batch = PostEntryBatchInput(entries=[move(f"to-b-{uuid.uuid4()}", a, b, 100)])

    async def close_b(holder: AsyncSession) -> None:
        await _transfer(a, c, 1)(holder)
        await holder.execute(
            text("UPDATE ledger_accounts SET status = 'closed', closed_at = now() WHERE id = :b"),
            {"b": b},
        )

    result = await _batch_across_a_commit(sessions, batch, close_b)

    assert result.rejected == 1
    assert result.results[0].error_type == ledger.ACCOUNT_CLOSED
    assert await balances(sessions, a, b) == [(999, 0), (0, 0)]
    await assert_ledger_ok(sessions)
