"""Idempotent replay of every ledger operation: the same request returns the first result and
changes nothing; the same key with different content is rejected and changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select, text

from activities import ledger
from activities.ledger import LedgerError
from core.db import SessionFactory, transaction
from models.audit import AuditEvent
from models.base import utcnow
from models.ledger.payloads import (
    CaptureHoldInput,
    CloseAccountInput,
    EnsureSystemAccountsInput,
    EntryLeg,
    ExpireHoldsInput,
    ExternalEntryInput,
    FundAccountInput,
    LedgerTransferInput,
    OpenAccountInput,
    PlaceHoldInput,
    PostEntryInput,
    RecategorizeInput,
    ReleaseHoldInput,
)
from tests.ledger_support import (
    assert_ledger_ok,
    funded_account,
    new_user,
    open_account,
    run,
    snapshot,
)


async def assert_replays(sessions: SessionFactory, operation: Any, req: BaseModel) -> Any:
    """Run `req` once, then again: the second call returns the same result and writes nothing."""
    first = await run(sessions, operation, req)
    before = await snapshot(sessions)
    again = await run(sessions, operation, req)
    assert again == first
    assert await snapshot(sessions) == before
    return first


async def assert_reused_key_rejected(
    sessions: SessionFactory, operation: Any, req: BaseModel
) -> None:
    """A different request under a used key raises IdempotencyKeyReused and writes nothing."""
    before = await snapshot(sessions)
    with pytest.raises(LedgerError) as caught:
        await run(sessions, operation, req)
    assert caught.value.type == ledger.IDEMPOTENCY_KEY_REUSED
    assert caught.value.non_retryable
    assert await snapshot(sessions) == before


@pytest.fixture
async def owner(sessions: SessionFactory) -> uuid.UUID:
    """A customer."""
    return await new_user(sessions)


async def test_open_account_replays_and_rejects_a_different_request(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    req = OpenAccountInput(
        idempotency_key="open-1", owner_user_id=owner, currency="EUR", name="Main"
    )

    await assert_replays(sessions, ledger.open_account, req)

    await assert_reused_key_rejected(
        sessions, ledger.open_account, req.model_copy(update={"currency": "USD"})
    )


async def test_ensure_system_accounts_is_naturally_idempotent(sessions: SessionFactory) -> None:
    await assert_replays(
        sessions, ledger.ensure_system_accounts, EnsureSystemAccountsInput(currency="KWD")
    )


async def test_transfer_replay_returns_the_first_result_even_after_later_postings(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    a = await funded_account(sessions, owner, 10_000, name="A")
    b = await funded_account(sessions, owner, 0, name="B")
    req = LedgerTransferInput(
        idempotency_key="tr-1", from_account_id=a, to_account_id=b, amount=300, currency="EUR"
    )
    first = await assert_replays(sessions, ledger.transfer, req)
    await run(
        sessions,
        ledger.transfer,
        req.model_copy(update={"idempotency_key": "tr-2", "amount": 1_000}),
    )

    again = await run(sessions, ledger.transfer, req)

    assert again == first  # balance_after is the balance right after the first posting
    await assert_reused_key_rejected(
        sessions, ledger.transfer, req.model_copy(update={"amount": 301})
    )
    await assert_reused_key_rejected(
        sessions,
        ledger.post_entry,
        PostEntryInput(
            idempotency_key="tr-1",
            legs=[
                EntryLeg(account_id=a, amount=-300, currency="EUR"),
                EntryLeg(account_id=b, amount=300, currency="EUR"),
            ],
        ),
    )


async def test_post_entry_replays_and_rejects_different_legs(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    a = await funded_account(sessions, owner, 10_000, name="A")
    b = await funded_account(sessions, owner, 0, name="B")
    c = await funded_account(sessions, owner, 0, name="C")
    req = PostEntryInput(
        idempotency_key="split-1",
        kind="split",
        description="Split the bill",
        legs=[
            EntryLeg(account_id=a, amount=-900, currency="EUR"),
            EntryLeg(account_id=b, amount=450, currency="EUR"),
            EntryLeg(account_id=c, amount=450, currency="EUR"),
        ],
    )

    await assert_replays(sessions, ledger.post_entry, req)

    changed = req.model_copy(
        update={
            "legs": [
                EntryLeg(account_id=a, amount=-900, currency="EUR"),
                EntryLeg(account_id=b, amount=500, currency="EUR"),
                EntryLeg(account_id=c, amount=400, currency="EUR"),
            ]
        }
    )
    await assert_reused_key_rejected(sessions, ledger.post_entry, changed)


async def test_funding_replays_without_a_second_audit_event(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    account = (await open_account(sessions, owner)).account_id
    req = FundAccountInput(
        idempotency_key="fund-1", account_id=account, amount=5_000, currency="EUR", reason="demo"
    )

    await assert_replays(sessions, ledger.fund_account, req)

    async with sessions() as session:
        audits = await session.scalar(select(func.count()).select_from(AuditEvent))
    assert audits == 1
    await assert_reused_key_rejected(
        sessions, ledger.fund_account, req.model_copy(update={"amount": 5_001})
    )


async def test_external_transaction_is_idempotent_on_its_external_id(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    account = await funded_account(sessions, owner, 10_000)
    req = ExternalEntryInput(
        account_id=account,
        external_id="card-auth-77",
        amount=1_999,
        currency="EUR",
        direction="debit",
        merchant="IKEA",
    )

    await assert_replays(sessions, ledger.record_external_transaction, req)

    await assert_reused_key_rejected(
        sessions, ledger.record_external_transaction, req.model_copy(update={"amount": 2_000})
    )


async def test_hold_placement_capture_and_release_replay(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    account = await funded_account(sessions, owner, 10_000)
    place = PlaceHoldInput(
        idempotency_key="hold-1", account_id=account, amount=3_000, currency="EUR"
    )
    placed = await assert_replays(sessions, ledger.place_hold, place)
    await assert_reused_key_rejected(
        sessions, ledger.place_hold, place.model_copy(update={"amount": 3_001})
    )

    capture = CaptureHoldInput(hold_id=placed.hold_id, amount=2_500)
    await assert_replays(sessions, ledger.capture_hold, capture)
    await assert_reused_key_rejected(
        sessions, ledger.capture_hold, capture.model_copy(update={"amount": 2_000})
    )

    other = await run(
        sessions, ledger.place_hold, place.model_copy(update={"idempotency_key": "hold-2"})
    )
    await assert_replays(sessions, ledger.release_hold, ReleaseHoldInput(hold_id=other.hold_id))
    await assert_ledger_ok(sessions)


async def test_expiring_twice_expires_nothing_more(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    account = await funded_account(sessions, owner, 10_000)
    later = utcnow() + timedelta(hours=2)
    await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(
            idempotency_key="h", account_id=account, amount=10, currency="EUR", ttl_seconds=3600
        ),
    )
    first = await run(sessions, ledger.expire_holds, ExpireHoldsInput(now=later))
    before = await snapshot(sessions)

    again = await run(sessions, ledger.expire_holds, ExpireHoldsInput(now=later))

    assert len(first.expired) == 1
    assert again.expired == []
    assert await snapshot(sessions) == before


async def test_close_account_replays_and_rejects_another_sweep_target(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    old = await funded_account(sessions, owner, 4_000, name="Old")
    new = await funded_account(sessions, owner, 0, name="New")
    other = await funded_account(sessions, owner, 0, name="Other")
    req = CloseAccountInput(account_id=old, sweep_to_account_id=new)

    closed = await assert_replays(sessions, ledger.close_account, req)

    assert closed.swept_amount == 4_000
    await assert_reused_key_rejected(
        sessions, ledger.close_account, req.model_copy(update={"sweep_to_account_id": other})
    )


async def test_recategorize_twice_writes_one_event(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    account = await funded_account(sessions, owner, 1_000)
    spent = await run(
        sessions,
        ledger.record_external_transaction,
        ExternalEntryInput(
            account_id=account, external_id="x", amount=10, currency="EUR", direction="debit"
        ),
    )
    req = RecategorizeInput(transaction_id=spent.transaction_id, category="health")

    await assert_replays(sessions, ledger.recategorize_transaction, req)


async def test_concurrent_duplicates_post_once_and_share_the_result(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    a = await funded_account(sessions, owner, 10_000, name="A")
    b = await funded_account(sessions, owner, 0, name="B")
    req = LedgerTransferInput(
        idempotency_key="dup", from_account_id=a, to_account_id=b, amount=700, currency="EUR"
    )

    results = await asyncio.gather(*(run(sessions, ledger.transfer, req) for _ in range(6)))

    assert all(r == results[0] for r in results)
    async with sessions() as session:
        entries = await session.scalar(
            text("SELECT count(*) FROM journal_entries WHERE kind = 'transfer'")
        )
    assert entries == 1
    await assert_ledger_ok(sessions)


async def test_a_rejected_request_leaves_its_key_free_for_a_later_retry(
    sessions: SessionFactory, owner: uuid.UUID
) -> None:
    a = await funded_account(sessions, owner, 100, name="A")
    b = await funded_account(sessions, owner, 0, name="B")
    req = LedgerTransferInput(
        idempotency_key="later", from_account_id=a, to_account_id=b, amount=500, currency="EUR"
    )
    with pytest.raises(LedgerError, match="insufficient"):
        await run(sessions, ledger.transfer, req)
    async with transaction(sessions) as session:
        await ledger.fund_account(
            session,
            FundAccountInput(idempotency_key="top-up", account_id=a, amount=400, currency="EUR"),
        )

    result = await run(sessions, ledger.transfer, req)

    assert result.postings[0].balance_after == 0
