"""Property-based tests (hypothesis, stateful): random sequences of transfers, holds, captures,
releases, expiries, closures, replays and bad requests against a simple in-memory model.

After every step the stored balances equal the model's and the invariant check passes (postings
sum to zero per currency, stored balances equal their postings and pending holds, no negative
available balance). Each example uses a fresh user and fresh accounts: the database is only
truncated between tests, so the model only looks at its own rows while the invariant check
covers everything.

Hypothesis drives a synchronous state machine; the async ledger runs on an event loop in a
background thread with its own engine.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from activities import ledger
from activities.ledger import LedgerError
from activities.ledger.verify import verify_ledger
from core.db import SessionFactory, create_engine, create_session_factory
from models.base import utcnow
from models.ledger.payloads import (
    CaptureHoldInput,
    CloseAccountInput,
    EntryResult,
    ExpireHoldsInput,
    LedgerTransferInput,
    PlaceHoldInput,
    ReleaseHoldInput,
)
from models.money import MAX_AMOUNT_MINOR
from tests.ledger_support import balances, funded_account, new_user, run

T = TypeVar("T")

ACCOUNT = st.integers(min_value=0, max_value=3)
AMOUNT = st.integers(min_value=1, max_value=40_000)


class BackgroundLoop:
    """An event loop on its own thread; `run` blocks until a coroutine finishes there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the background loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@dataclass
class ModelAccount:
    """What the model expects of an account."""

    id: uuid.UUID
    posted: int
    held: int = 0
    closed: bool = False


@dataclass
class ModelHold:
    """What the model expects of a hold."""

    id: uuid.UUID
    account: ModelAccount
    amount: int
    expires_at: datetime
    status: str = "pending"
    captured: int | None = None


class LedgerMachine(RuleBasedStateMachine):
    """Random ledger operations, each checked against the model's expected outcome."""

    bg: BackgroundLoop
    sessions: SessionFactory

    def __init__(self) -> None:
        super().__init__()
        self.accounts: list[ModelAccount] = []
        self.holds: list[ModelHold] = []
        self.transfers: list[tuple[LedgerTransferInput, EntryResult]] = []
        self.base = utcnow() + timedelta(minutes=5)  # holds expire at base + n hours
        self.clock = self.base
        self.keys = 0

    # --- helpers ---------------------------------------------------------------------------

    def call(self, operation: Any, req: Any) -> Any:
        """The operation's result, or the type of the LedgerError it raised."""
        try:
            return self.bg.run(run(self.sessions, operation, req))
        except LedgerError as err:
            return err.type

    def key(self, prefix: str) -> str:
        self.keys += 1
        return f"{prefix}-{uuid.uuid4()}-{self.keys}"

    def account(self, index: int) -> ModelAccount:
        return self.accounts[index % len(self.accounts)]

    # --- rules -----------------------------------------------------------------------------

    @initialize(amounts=st.lists(st.integers(0, 50_000), min_size=2, max_size=4))
    def open_accounts(self, amounts: list[int]) -> None:
        owner = self.bg.run(new_user(self.sessions, "prop"))
        for n, amount in enumerate(amounts):
            account_id = self.bg.run(funded_account(self.sessions, owner, amount, name=f"P{n}"))
            self.accounts.append(ModelAccount(account_id, amount))

    @rule(src=ACCOUNT, dst=ACCOUNT, amount=AMOUNT)
    def transfer(self, src: int, dst: int, amount: int) -> None:
        a, b = self.account(src), self.account(dst)
        req = LedgerTransferInput(
            idempotency_key=self.key("t"),
            from_account_id=a.id,
            to_account_id=b.id,
            amount=amount,
            currency="EUR",
        )
        outcome = self.call(ledger.transfer, req)
        if a is b:
            assert outcome == ledger.INVALID_REQUEST
        elif a.closed or b.closed:
            assert outcome == ledger.ACCOUNT_CLOSED
        elif a.posted - a.held < amount:
            assert outcome == ledger.INSUFFICIENT_FUNDS
        else:
            assert isinstance(outcome, EntryResult), outcome
            a.posted -= amount
            b.posted += amount
            assert [p.balance_after for p in outcome.postings] == [a.posted, b.posted]
            self.transfers.append((req, outcome))

    @precondition(lambda self: self.transfers)
    @rule(pick=st.integers(min_value=0), change=st.booleans())
    def retry_transfer(self, pick: int, change: bool) -> None:
        req, first = self.transfers[pick % len(self.transfers)]
        if change:  # same key, different content
            outcome = self.call(ledger.transfer, req.model_copy(update={"amount": req.amount + 1}))
            assert outcome == ledger.IDEMPOTENCY_KEY_REUSED
        else:
            assert self.call(ledger.transfer, req) == first

    @rule(src=ACCOUNT, dst=ACCOUNT, amount=st.sampled_from([0, -1, -500, MAX_AMOUNT_MINOR + 1]))
    def bad_amount(self, src: int, dst: int, amount: int) -> None:
        req = LedgerTransferInput(
            idempotency_key=self.key("bad"),
            from_account_id=self.account(src).id,
            to_account_id=self.account(dst).id,
            amount=amount,
            currency="EUR",
        )
        assert self.call(ledger.transfer, req) == ledger.INVALID_AMOUNT

    @rule(index=ACCOUNT, amount=AMOUNT, hours=st.integers(1, 12))
    def place_hold(self, index: int, amount: int, hours: int) -> None:
        a = self.account(index)
        expires_at = self.base + timedelta(hours=hours)
        req = PlaceHoldInput(
            idempotency_key=self.key("h"),
            account_id=a.id,
            amount=amount,
            currency="EUR",
            expires_at=expires_at,
        )
        outcome = self.call(ledger.place_hold, req)
        if a.closed:
            assert outcome == ledger.ACCOUNT_CLOSED
        elif a.posted - a.held < amount:
            assert outcome == ledger.INSUFFICIENT_FUNDS
        else:
            assert not isinstance(outcome, str), outcome
            a.held += amount
            self.holds.append(ModelHold(outcome.hold_id, a, amount, expires_at))

    @precondition(lambda self: self.holds)
    @rule(pick=st.integers(min_value=0), percent=st.integers(1, 100))
    def capture(self, pick: int, percent: int) -> None:
        hold = self.holds[pick % len(self.holds)]
        amount = max(1, hold.amount * percent // 100)
        outcome = self.call(ledger.capture_hold, CaptureHoldInput(hold_id=hold.id, amount=amount))
        if hold.status == "pending":
            assert not isinstance(outcome, str), outcome
            hold.status, hold.captured = "captured", amount
            hold.account.posted -= amount
            hold.account.held -= hold.amount
        elif hold.status == "captured":
            if amount == hold.captured:
                assert not isinstance(outcome, str), outcome
            else:
                assert outcome == ledger.IDEMPOTENCY_KEY_REUSED
        else:
            assert outcome == ledger.HOLD_ALREADY_RESOLVED

    @precondition(lambda self: self.holds)
    @rule(pick=st.integers(min_value=0))
    def release(self, pick: int) -> None:
        hold = self.holds[pick % len(self.holds)]
        outcome = self.call(ledger.release_hold, ReleaseHoldInput(hold_id=hold.id))
        if hold.status in ("pending", "released"):
            assert not isinstance(outcome, str), outcome
            if hold.status == "pending":
                hold.status = "released"
                hold.account.held -= hold.amount
        else:
            assert outcome == ledger.HOLD_ALREADY_RESOLVED

    @rule(hours=st.integers(0, 8))
    def advance_clock_and_expire(self, hours: int) -> None:
        self.clock += timedelta(hours=hours)
        outcome = self.call(ledger.expire_holds, ExpireHoldsInput(now=self.clock, limit=10_000))
        assert not isinstance(outcome, str), outcome
        due = {h.id for h in self.holds if h.status == "pending" and h.expires_at <= self.clock}
        mine = {h.id for h in self.holds}
        assert set(outcome.expired) & mine == due
        for hold in self.holds:
            if hold.id in due:
                hold.status = "expired"
                hold.account.held -= hold.amount

    @rule(index=ACCOUNT, sweep=st.none() | ACCOUNT)
    def close(self, index: int, sweep: int | None) -> None:
        a = self.account(index)
        b = None if sweep is None else self.account(sweep)
        req = CloseAccountInput(account_id=a.id, sweep_to_account_id=b.id if b else None)
        outcome = self.call(ledger.close_account, req)
        if a.closed:
            assert not isinstance(outcome, str) or outcome == ledger.IDEMPOTENCY_KEY_REUSED
        elif a.held or (a.posted and b is None):
            assert outcome == ledger.ACCOUNT_NOT_EMPTY
        elif a.posted and b is a:
            assert outcome == ledger.INVALID_SWEEP_TARGET
        elif a.posted and b is not None and b.closed:
            assert outcome == ledger.ACCOUNT_CLOSED
        else:
            assert not isinstance(outcome, str), outcome
            if a.posted and b is not None:
                b.posted += a.posted
                a.posted = 0
            a.closed = True

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self) -> None:
        if not self.accounts:
            return
        stored = self.bg.run(balances(self.sessions, *(a.id for a in self.accounts)))
        assert stored == [(a.posted, a.held) for a in self.accounts]

    @invariant()
    def ledger_invariants_hold(self) -> None:
        report = self.bg.run(verify_ledger(self.sessions))
        assert report.ok, report.model_dump_json(indent=2)


def test_ledger_invariants_hold_over_random_operation_sequences(
    database_url: str, engine: AsyncEngine
) -> None:
    # `engine` is requested so the database is truncated after this test like after the others.
    bg = BackgroundLoop()
    own_engine = create_engine(database_url, pool_size=2)
    LedgerMachine.bg = bg
    LedgerMachine.sessions = create_session_factory(own_engine)
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=20,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
                database=None,
            ),
        )
    finally:
        bg.run(own_engine.dispose())
        bg.close()
