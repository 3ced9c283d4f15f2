"""LedgerActivities: the ledger operations that workflows call, one transaction each.

Only what a workflow runs is registered; the API, ops commands and other activities call the
plain functions of `activities.ledger` inside their own transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.ledger.closure import close_account
from activities.ledger.entries import record_external_transaction
from activities.ledger.holds import capture_hold, expire_holds, place_hold, release_hold
from activities.security.freezes import ensure_not_frozen, hold_placed
from core.db import SessionFactory, transaction
from models.ledger.payloads import (
    CaptureHoldInput,
    CloseAccountInput,
    ClosedAccount,
    ExpireHoldsInput,
    ExpireHoldsResult,
    ExternalEntryInput,
    ExternalTransactionResult,
    PlacedHold,
    PlaceHoldInput,
    ReleaseHoldInput,
    ResolvedHold,
)
from temporal.deterministic import input_refusals_are_final

Req = TypeVar("Req", bound=BaseModel)
FROZEN_HOLD_KINDS = frozenset({"external_payment"})  # money leaving the bank on request


async def _place_unless_frozen(session: AsyncSession, req: PlaceHoldInput) -> PlacedHold:
    """The freeze is checked in the placing transaction, so a payment that was waiting (e.g.
    for approval) when the account froze cannot go on; a retry of a placed hold still replays."""
    if req.kind in FROZEN_HOLD_KINDS and not await hold_placed(session, req.idempotency_key):
        await ensure_not_frozen(session, req.account_id)
    return await place_hold(session, req)


Res = TypeVar("Res", bound=BaseModel)


class LedgerActivities:
    """The ledger operations as activities: each runs in its own database transaction."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def _run(self, operation: Callable[[AsyncSession, Req], Awaitable[Res]], req: Req) -> Res:
        with input_refusals_are_final():
            async with transaction(self._sessions) as session:
                return await operation(session, req)

    @activity.defn(name="ledger.record_external_transaction")
    async def record_external_transaction(
        self, req: ExternalEntryInput
    ) -> ExternalTransactionResult:
        """Record a card or cash transaction."""
        return await self._run(record_external_transaction, req)

    @activity.defn(name="ledger.place_hold")
    async def place_hold(self, req: PlaceHoldInput) -> PlacedHold:
        """Place a hold; an external payment's hold is refused while its account is frozen."""
        return await self._run(_place_unless_frozen, req)

    @activity.defn(name="ledger.capture_hold")
    async def capture_hold(self, req: CaptureHoldInput) -> ResolvedHold:
        """Capture a hold fully or partly."""
        return await self._run(capture_hold, req)

    @activity.defn(name="ledger.release_hold")
    async def release_hold(self, req: ReleaseHoldInput) -> ResolvedHold:
        """Release a hold."""
        return await self._run(release_hold, req)

    @activity.defn(name="ledger.expire_holds")
    async def expire_holds(self, req: ExpireHoldsInput) -> ExpireHoldsResult:
        """Expire pending holds past their expiry (one batch)."""
        return await self._run(expire_holds, req)

    @activity.defn(name="ledger.close_account")
    async def close_account(self, req: CloseAccountInput) -> ClosedAccount:
        """Close a customer account (sweeping its balance if asked)."""
        return await self._run(close_account, req)

    def all(self) -> list[Callable[..., Any]]:
        """Every ledger activity, for worker registration."""
        return [
            self.record_external_transaction,
            self.place_hold,
            self.capture_hold,
            self.release_hold,
            self.expire_holds,
            self.close_account,
        ]
