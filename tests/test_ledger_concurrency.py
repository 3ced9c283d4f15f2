"""A concurrent "bank": many transfers, holds and retries racing on a few accounts, each in its
own session and transaction. Afterwards the invariants hold, money is conserved, every key
posted at most once, and nothing failed except for business reasons (no deadlocks)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Iterable
from typing import Any

from sqlalchemy import text

from activities import ledger
from activities.ledger import LedgerError
from core.db import SessionFactory
from models.base import utcnow
from models.ledger.payloads import (
    CaptureHoldInput,
    EntryResult,
    ExpireHoldsInput,
    LedgerTransferInput,
    PlaceHoldInput,
    ReleaseHoldInput,
)
from tests.ledger_support import assert_ledger_ok, balances, funded_account, new_user, run

ACCOUNTS = 8
START = 10_000


async def _attempt(sessions: SessionFactory, operation: Any, req: Any) -> Any:
    """The result, or the LedgerError type; anything else (e.g. a deadlock) propagates."""
    try:
        return await run(sessions, operation, req)
    except LedgerError as err:
        return err.type


async def _all(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run concurrently; all calls finish before an unexpected error (a deadlock) is raised."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    unexpected = [o for o in outcomes if isinstance(o, BaseException)]
    if unexpected:
        raise unexpected[0]
    return outcomes


async def test_concurrent_transfers_conserve_money_and_keep_the_invariants(
    sessions: SessionFactory,
) -> None:
    rng = random.Random(20261124)
    owners = [await new_user(sessions, f"user{n}") for n in range(4)]
    accounts = [
        await funded_account(sessions, owners[n % 4], START, name=f"A{n}") for n in range(ACCOUNTS)
    ]
    requests = []
    for n in range(200):
        src, dst = rng.sample(accounts, 2)
        # Mostly small amounts; every tenth is large enough to fail for insufficient funds.
        amount = rng.randint(8_000, 30_000) if n % 10 == 0 else rng.randint(1, 2_500)
        requests.append(
            LedgerTransferInput(
                idempotency_key=f"bank-{n}",
                from_account_id=src,
                to_account_id=dst,
                amount=amount,
                currency="EUR",
            )
        )
    retried = rng.sample(requests, 30)  # the same request delivered twice, concurrently
    calls = requests + retried
    rng.shuffle(calls)

    outcomes = await _all(_attempt(sessions, ledger.transfer, r) for r in calls)

    kinds = Counter("ok" if isinstance(o, EntryResult) else o for o in outcomes)
    assert set(kinds) <= {"ok", ledger.INSUFFICIENT_FUNDS}, kinds
    assert kinds["ok"] > 100
    assert kinds[ledger.INSUFFICIENT_FUNDS] > 0
    by_key: dict[str, list[EntryResult]] = {}
    for req, outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, EntryResult):
            by_key.setdefault(req.idempotency_key, []).append(outcome)
    for results in by_key.values():  # a retried key that posted twice returned the same entry
        assert all(r == results[0] for r in results)
    async with sessions() as session:
        entries = await session.scalar(
            text("SELECT count(*) FROM journal_entries WHERE idempotency_key LIKE 'bank-%'")
        )
    assert entries == len(by_key)
    final = await balances(sessions, *accounts)
    assert sum(posted for posted, _ in final) == ACCOUNTS * START
    assert all(posted >= 0 for posted, _ in final)
    await assert_ledger_ok(sessions)


async def test_concurrent_holds_captures_and_transfers_on_one_hot_account(
    sessions: SessionFactory,
) -> None:
    rng = random.Random(7)
    owner = await new_user(sessions)
    hot = await funded_account(sessions, owner, 50_000, name="Hot")
    others = [await funded_account(sessions, owner, 5_000, name=f"O{n}") for n in range(3)]
    holds = [
        await run(
            sessions,
            ledger.place_hold,
            PlaceHoldInput(
                idempotency_key=f"pre-{n}", account_id=hot, amount=1_000, currency="EUR"
            ),
        )
        for n in range(12)
    ]
    calls: list[tuple[Any, Any]] = []
    for n, hold in enumerate(holds):
        # Each hold gets two competing resolutions; exactly one can win.
        calls.append((ledger.capture_hold, CaptureHoldInput(hold_id=hold.hold_id, amount=600)))
        calls.append((ledger.release_hold, ReleaseHoldInput(hold_id=hold.hold_id)))
        calls.append(
            (
                ledger.place_hold,
                PlaceHoldInput(
                    idempotency_key=f"new-{n}",
                    account_id=hot,
                    amount=rng.randint(100, 3_000),
                    currency="EUR",
                    ttl_seconds=60,
                ),
            )
        )
    for n in range(40):
        other = rng.choice(others)
        src, dst = (hot, other) if n % 2 else (other, hot)
        calls.append(
            (
                ledger.transfer,
                LedgerTransferInput(
                    idempotency_key=f"hot-{n}",
                    from_account_id=src,
                    to_account_id=dst,
                    amount=rng.randint(1, 4_000),
                    currency="EUR",
                ),
            )
        )
    calls.append((ledger.expire_holds, ExpireHoldsInput(now=utcnow().replace(year=2100))))
    rng.shuffle(calls)

    outcomes = await _all(_attempt(sessions, op, req) for op, req in calls)

    errors = Counter(o for o in outcomes if isinstance(o, str))
    assert set(errors) <= {ledger.INSUFFICIENT_FUNDS, ledger.HOLD_ALREADY_RESOLVED}, errors
    async with sessions() as session:
        statuses = Counter(
            (
                await session.execute(
                    text("SELECT status FROM holds WHERE idempotency_key LIKE 'pre-%'")
                )
            ).scalars()
        )
    assert sum(statuses.values()) == 12
    assert "pending" not in statuses or statuses["pending"] == 0
    total = sum(posted for posted, _ in await balances(sessions, hot, *others))
    captured = 600 * statuses["captured"]
    assert total == 50_000 + 3 * 5_000 - captured  # captures left for external settlement
    await assert_ledger_ok(sessions)
