"""Linked external accounts: send two micro-deposits, reconcile them, check the customer's answer.

The two amounts (1..99 minor units each) are derived from a keyed HMAC of the link id, so every
retry sends the same amounts and they never pass through Temporal. The bank pays them from its
`fees` system account to `external_settlement` of the currency (no customer money moves); a
deposit the rail rejects or cancels is reversed. Rail references and ledger keys are derived from
the link id, so the rail and the ledger both dedupe retries.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger import ensure_system_accounts, post_entry
from activities.providers.rail import (
    PaymentRail,
    RailError,
    RailNotFoundError,
    RailPayment,
    SubmitPayment,
)
from core.crypto import Crypto, constant_time_equal
from core.db import SessionFactory, transaction
from models.base import utcnow
from models.ledger.payloads import EnsureSystemAccountsInput, EntryLeg, PostEntryInput
from models.ledger.tables import OutboxEvent
from models.linking.payloads import (
    AmountsCheck,
    CheckAmountsInput,
    MicroDepositsInput,
    MicroDepositsOutcome,
    MicroDepositsSent,
    SetLinkStatusInput,
)
from models.linking.tables import LinkedAccount, LinkStatus

DEPOSIT_COUNT = 2
MAX_DEPOSIT_MINOR = 99
MICRO_DEPOSITS_PENDING = "MicroDepositsPending"
MICRO_DEPOSIT_REFUSED = "MicroDepositRefused"
UNKNOWN_LINK = "UnknownLinkedAccount"
USER_EVENTS_TOPIC = "user.events"
_TERMINAL = frozenset({LinkStatus.LINKED, LinkStatus.FAILED, LinkStatus.EXPIRED})


def micro_deposit_amounts(crypto: Crypto, linked_account_id: uuid.UUID) -> tuple[int, int]:
    """The two amounts (minor units, 1..99, distinct) of a link, from a keyed HMAC of its id."""
    n = int(crypto.digest("micro-deposit-amounts", str(linked_account_id)), 16)
    first = n % MAX_DEPOSIT_MINOR + 1
    second = (n // MAX_DEPOSIT_MINOR) % MAX_DEPOSIT_MINOR + 1
    if second == first:
        second = first % MAX_DEPOSIT_MINOR + 1
    return first, second


def amounts_digest(crypto: Crypto, linked_account_id: uuid.UUID, amounts: Iterable[int]) -> str:
    """Keyed, order-insensitive digest of a pair of minor-unit amounts (what the API sends)."""
    canonical = ",".join(str(a) for a in sorted(amounts))
    return crypto.digest("micro-deposit-check", str(linked_account_id), canonical)


def micro_deposit_reference(linked_account_id: uuid.UUID, n: int) -> str:
    """The rail reference (its idempotency key) of the nth micro-deposit."""
    return f"microdeposit:{linked_account_id}:{n}"


def _ledger_key(linked_account_id: uuid.UUID, n: int) -> str:
    return f"micro-deposit:{linked_account_id}:{n}"


async def set_link_status(session: AsyncSession, change: SetLinkStatusInput) -> bool:
    """Write a link's new status and its `linked_account.updated` event in the caller's
    transaction; a terminal status is final. False when nothing changed."""
    link = await session.get(LinkedAccount, change.linked_account_id, with_for_update=True)
    if link is None:
        raise ApplicationError("unknown linked account", type=UNKNOWN_LINK, non_retryable=True)
    if link.status == change.status or LinkStatus(link.status) in _TERMINAL:
        return False
    link.status, link.updated_at = change.status, utcnow()
    session.add(
        OutboxEvent(
            topic=USER_EVENTS_TOPIC,
            type="linked_account.updated",
            aggregate_id=link.id,
            user_id=link.user_id,
            payload={
                "linked_account_id": str(link.id),
                "account_id": str(link.account_id),
                "status": change.status.value,
            },
        )
    )
    return True


class LinkingActivities:
    """Activities of LinkAccountWorkflow, bound to their dependencies."""

    def __init__(self, sessions: SessionFactory, crypto: Crypto, rail: PaymentRail) -> None:
        self._sessions = sessions
        self._crypto = crypto
        self._rail = rail

    @activity.defn(name="linking.send_micro_deposits")
    async def send_micro_deposits(self, inp: MicroDepositsInput) -> MicroDepositsSent:
        """Submit both deposits to the rail and book each once accepted; a refusal cancels the
        ones already sent and fails without retry."""
        async with self._sessions() as session:
            link = await session.get(LinkedAccount, inp.linked_account_id)
        if link is None:
            raise ApplicationError("unknown linked account", type=UNKNOWN_LINK, non_retryable=True)
        async with transaction(self._sessions) as session:
            system = await ensure_system_accounts(
                session, EnsureSystemAccountsInput(currency=inp.currency)
            )
        amounts = micro_deposit_amounts(self._crypto, inp.linked_account_id)
        accepted: list[RailPayment] = []
        for n, amount in enumerate(amounts, start=1):
            activity.heartbeat(n)
            try:
                payment = await self._rail.submit(
                    SubmitPayment(
                        reference=micro_deposit_reference(inp.linked_account_id, n),
                        amount=amount,
                        currency=inp.currency,
                        creditor_name=link.holder_name,
                        creditor_iban=link.iban,
                        debtor_account=str(system.fees),
                    )
                )
            except RailError as exc:
                if exc.retryable:
                    raise
                for earlier in accepted:  # best effort; the reconciliation reverses them
                    with contextlib.suppress(RailError):
                        await self._rail.cancel(earlier.rail_payment_id)
                raise ApplicationError(
                    f"the rail refused micro-deposit {n} ({type(exc).__name__}, "
                    f"HTTP {exc.status_code})",
                    type=MICRO_DEPOSIT_REFUSED,
                    non_retryable=True,
                ) from None
            accepted.append(payment)
            async with transaction(self._sessions) as session:
                await post_entry(
                    session,
                    PostEntryInput(
                        idempotency_key=_ledger_key(inp.linked_account_id, n),
                        kind="micro_deposit",
                        description="Account-link micro-deposit",
                        legs=[
                            EntryLeg(account_id=system.fees, amount=-amount, currency=inp.currency),
                            EntryLeg(
                                account_id=system.external_settlement,
                                amount=amount,
                                currency=inp.currency,
                            ),
                        ],
                    ),
                )
        return MicroDepositsSent(rail_payment_ids=[p.rail_payment_id for p in accepted])

    @activity.defn(name="linking.settle_micro_deposits")
    async def settle_micro_deposits(self, inp: MicroDepositsInput) -> MicroDepositsOutcome:
        """Poll the rail (retried while any deposit is pending); reverse each deposit that was
        booked but rejected or cancelled."""
        payments: list[RailPayment | None] = []
        for n in range(1, DEPOSIT_COUNT + 1):
            try:
                payments.append(
                    await self._rail.status(micro_deposit_reference(inp.linked_account_id, n))
                )
            except RailNotFoundError:
                payments.append(None)  # never accepted, so never booked
        if any(p is not None and not p.is_final for p in payments):
            raise ApplicationError("micro-deposits still pending", type=MICRO_DEPOSITS_PENDING)
        amounts = micro_deposit_amounts(self._crypto, inp.linked_account_id)
        returned = [
            (n, amount, p)
            for n, (amount, p) in enumerate(zip(amounts, payments, strict=True), start=1)
            if p is not None and p.status != "settled"
        ]
        if returned:
            async with transaction(self._sessions) as session:
                system = await ensure_system_accounts(
                    session, EnsureSystemAccountsInput(currency=inp.currency)
                )
                for n, amount, _ in returned:
                    await post_entry(
                        session,
                        PostEntryInput(
                            idempotency_key=_ledger_key(inp.linked_account_id, n) + ":returned",
                            kind="micro_deposit_return",
                            description="Account-link micro-deposit returned",
                            legs=[
                                EntryLeg(
                                    account_id=system.external_settlement,
                                    amount=-amount,
                                    currency=inp.currency,
                                ),
                                EntryLeg(
                                    account_id=system.fees, amount=amount, currency=inp.currency
                                ),
                            ],
                        ),
                    )
        reason = next((p.reason or p.status for _, _, p in returned), None)
        return MicroDepositsOutcome(
            settled=sum(1 for p in payments if p is not None and p.status == "settled"),
            returned=len(returned),
            not_sent=sum(1 for p in payments if p is None),
            reason=reason,
        )

    @activity.defn(name="linking.check_amounts")
    async def check_amounts(self, inp: CheckAmountsInput) -> AmountsCheck:
        """Compare the submitted digest with the digest of the derived amounts."""
        expected = amounts_digest(
            self._crypto,
            inp.linked_account_id,
            micro_deposit_amounts(self._crypto, inp.linked_account_id),
        )
        return AmountsCheck(matches=constant_time_equal(expected, inp.amounts_digest))

    @activity.defn(name="linking.set_status")
    async def set_status(self, change: SetLinkStatusInput) -> None:
        """Record a status change and its `linked_account.updated` event; terminal is final."""
        async with transaction(self._sessions) as session:
            await set_link_status(session, change)

    def main(self) -> list[object]:
        """The database-only activities (main worker)."""
        return [self.check_amounts, self.set_status]

    def external(self) -> list[object]:
        """The activities that call the rail (external-calls worker)."""
        return [self.send_micro_deposits, self.settle_micro_deposits]
