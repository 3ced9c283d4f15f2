"""The sweep's money side: the invariants checked on one consistent snapshot of the ledger after
every call (see test_no_money_from_nowhere).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.payment_support import rail_payment
from tests.sweep_requests import World

# What a customer's request may ever cause in the ledger: transfers it asked for, the capture
# of its external payment, a sweep between its own accounts when closing one, and the bank's
# micro-deposits to an external account it links (paid by the bank, never by a customer).
ALLOWED_ENTRY_KINDS: Final = frozenset(
    {"transfer", "hold_capture", "sweep", "micro_deposit", "micro_deposit_return"}
)


MICRO_DEPOSIT_KINDS: Final = frozenset({"micro_deposit", "micro_deposit_return"})


_POSTINGS = text(
    "SELECT p.id, p.entry_id, p.account_id, p.amount, p.currency, a.kind AS account_kind, "
    "a.owner_user_id AS owner, e.kind AS entry_kind, e.idempotency_key AS entry_key "
    "FROM postings p JOIN ledger_accounts a ON a.id = p.account_id "
    "JOIN journal_entries e ON e.id = p.entry_id ORDER BY p.id"
)


_ACCOUNTS = text(
    "SELECT id, owner_user_id AS owner, currency, posted, held FROM ledger_accounts "
    "WHERE kind = 'customer' AND owner_user_id IN (:a, :v)"
)


_MOVING_MEMOS = text(
    "SELECT id, journal_entry_id, hold_id FROM transactions "
    "WHERE status = 'memo' AND (journal_entry_id IS NOT NULL OR hold_id IS NOT NULL)"
)


@dataclass
class Books:
    """The baseline after ops funded both customers, and the checks against it."""

    world: World
    baseline: set[int]
    start: Balances
    verified: set[uuid.UUID] = field(default_factory=set)
    captures: set[uuid.UUID] = field(default_factory=set)

    @classmethod
    async def open(cls, engine: AsyncEngine, world: World) -> Books:
        """Take the baseline."""
        async with _snapshot(engine) as conn:
            postings = {int(r.id) for r in (await conn.execute(_POSTINGS)).all()}
            balances = await Balances.read(conn, world)
        return cls(world, postings, balances)

    async def check(
        self, engine: AsyncEngine, rail: httpx.AsyncClient, call: str, *, final: bool = False
    ) -> None:
        """Every invariant, from one consistent snapshot of the books."""
        world = self.world
        async with _snapshot(engine) as conn:
            rows = [r for r in (await conn.execute(_POSTINGS)).all() if r.id not in self.baseline]
            now = await Balances.read(conn, world)
            attackers, victims = now.accounts(world.attacker_id), now.accounts(world.victim_id)
            moving_memos = (await conn.execute(_MOVING_MEMOS)).all()
            entries: dict[uuid.UUID, list[Any]] = defaultdict(list)
            for row in rows:
                entries[row.entry_id].append(row)
            credited: dict[str, int] = defaultdict(int)
            for entry_id, legs in entries.items():
                for leg in legs:
                    if leg.account_id in victims:
                        credited[leg.currency] += int(leg.amount)
                if entry_id in self.verified and not (final and entry_id in self.captures):
                    continue
                await self._entry(conn, rail, entry_id, legs, attackers, victims, call, final)
                self.verified.add(entry_id)
        assert not moving_memos, f"after {call}: memos that moved money: {moving_memos}"
        before, after = self.start.total(world.attacker_id), now.total(world.attacker_id)
        for currency, posted in after.items():
            start = before.get(currency, 0)
            assert posted <= start, (
                f"after {call}: the attacker's {currency} grew from {start} to {posted}"
            )
        before, after = self.start.total(world.victim_id), now.total(world.victim_id)
        for currency in set(before) | set(after):
            start, total = before.get(currency, 0), after.get(currency, 0)
            assert total == start + credited[currency], (
                f"after {call}: the victim's {currency} is {total}, but {start} + transfers the "
                f"attacker asked for = {start + credited[currency]}"
            )
        for account in self.start.accounts(world.victim_id):  # the victim asks for nothing
            assert now.posted[account] >= self.start.posted[account], (
                f"after {call}: the victim's account {account} went down"
            )
            assert now.held[account] <= self.start.held[account], (
                f"after {call}: money of the victim's account {account} was put on hold"
            )

    async def _entry(
        self,
        conn: AsyncConnection,
        rail: httpx.AsyncClient,
        entry_id: uuid.UUID,
        legs: list[Any],
        attackers: set[uuid.UUID],
        victims: set[uuid.UUID],
        call: str,
        final: bool,
    ) -> None:
        kind, key = legs[0].entry_kind, legs[0].entry_key
        where = f"after {call}: entry {entry_id} ({kind}, {key})"
        assert kind in ALLOWED_ENTRY_KINDS, f"{where} is no entry a customer may cause"
        mine: dict[str, int] = defaultdict(int)
        for leg in legs:
            if leg.account_id in attackers:
                mine[leg.currency] += int(leg.amount)
        assert all(delta <= 0 for delta in mine.values()), f"{where} gives the attacker {mine}"
        for leg in legs:
            if leg.account_id in victims:
                await self._asked_for_by_attacker(conn, leg, legs, attackers, where)
            elif leg.account_kind == "suspense":
                raise AssertionError(f"{where} parks money in suspense")
            elif leg.account_kind == "fees":
                assert kind in MICRO_DEPOSIT_KINDS, f"{where} moves the bank's fees"
            elif leg.account_kind == "external_settlement":
                if kind == "hold_capture":
                    await self._settled_at_rail(conn, rail, entry_id, leg, where, final)
                else:
                    assert kind in MICRO_DEPOSIT_KINDS, (
                        f"{where} moves money across the bank's edge"
                    )
                    await self._micro_deposit(conn, rail, leg, where)
            else:
                assert leg.account_kind == "customer", f"{where}: leg on {leg.account_kind}"
                assert leg.account_id in attackers, f"{where} touches a third customer"

    async def _asked_for_by_attacker(
        self,
        conn: AsyncConnection,
        leg: Any,
        legs: list[Any],
        attackers: set[uuid.UUID],
        where: str,
    ) -> None:
        """A victim leg: a credit of a transfer the attacker asked for, from its own account."""
        assert leg.amount > 0, f"{where} debits the victim's account {leg.account_id}"
        assert leg.entry_kind == "transfer", f"{where} credits the victim outside a transfer"
        payment_id = str(leg.entry_key).removeprefix("transfer:")
        payment = (
            await conn.execute(
                text(
                    "SELECT user_id, kind, from_account_id, to_account_id, amount, currency "
                    "FROM payments WHERE id = :id"
                ),
                {"id": uuid.UUID(payment_id)},
            )
        ).one_or_none()
        assert payment is not None, f"{where}: no payment {payment_id}"
        assert payment.user_id == self.world.attacker_id, f"{where}: not the attacker's payment"
        assert payment.kind == "internal_transfer", f"{where}: payment {payment.kind}"
        assert payment.from_account_id in attackers, f"{where}: paid from {payment.from_account_id}"
        assert (payment.to_account_id, payment.amount) == (leg.account_id, leg.amount), where
        debits = [
            x for x in legs if x.account_id == payment.from_account_id and x.amount == -leg.amount
        ]
        assert debits, f"{where}: no debit of the attacker's account beside the victim's credit"

    async def _settled_at_rail(
        self,
        conn: AsyncConnection,
        rail: httpx.AsyncClient,
        entry_id: uuid.UUID,
        leg: Any,
        where: str,
        final: bool,
    ) -> None:
        """Money out to the rail: the capture of an external payment's hold, settled there."""
        self.captures.add(entry_id)
        hold = (
            await conn.execute(
                text(
                    "SELECT idempotency_key, captured_amount, currency FROM holds "
                    "WHERE capture_entry_id = :entry"
                ),
                {"entry": entry_id},
            )
        ).one_or_none()
        assert hold is not None, f"{where}: no hold was captured by this entry"
        assert hold.captured_amount == leg.amount, f"{where}: captured {hold.captured_amount}"
        prefix, _, rest = str(hold.idempotency_key).partition(":")
        payment_id = rest.removesuffix(":hold")
        assert prefix == "payment", f"{where}: hold {hold.idempotency_key} is no payment's"
        payment = (
            await conn.execute(
                text(
                    "SELECT user_id, kind, status, amount, currency, rail_payment_id "
                    "FROM payments WHERE id = :id"
                ),
                {"id": uuid.UUID(payment_id)},
            )
        ).one_or_none()
        assert payment is not None, f"{where}: no payment {payment_id}"
        assert payment.kind == "external", f"{where}: a {payment.kind} payment left the bank"
        assert (payment.amount, payment.currency) == (leg.amount, leg.currency), where
        seen = await rail_payment(rail, payment_id)
        assert seen is not None, f"{where}: the rail never heard of payment {payment_id}"
        assert seen["status"] == "settled", f"{where}: the rail says {seen['status']}"
        assert (seen["amount"], seen["currency"]) == (leg.amount, leg.currency), (where, seen)
        if final:
            assert payment.status == "completed", f"{where}: payment {payment.status}"
            assert payment.rail_payment_id == seen["rail_payment_id"], (where, seen)

    async def _micro_deposit(
        self, conn: AsyncConnection, rail: httpx.AsyncClient, leg: Any, where: str
    ) -> None:
        """The bank's micro-deposit to an external account being linked (or its return)."""
        _, link_id, n, *returned = str(leg.entry_key).split(":")
        link = (
            await conn.execute(
                text("SELECT iban FROM linked_accounts WHERE id = :id"), {"id": uuid.UUID(link_id)}
            )
        ).one_or_none()
        assert link is not None, f"{where}: no linked account {link_id}"
        seen = await rail_payment(rail, f"microdeposit:{link_id}:{n}")
        assert seen is not None, f"{where}: the rail never carried this micro-deposit"
        assert seen["amount"] == abs(leg.amount), (where, seen)
        assert seen["creditor_iban"].replace(" ", "") == link.iban.replace(" ", ""), (where, seen)
        if returned:
            assert seen["status"] != "settled", f"{where}: returned, but the rail settled it"


@asynccontextmanager
async def _snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A REPEATABLE READ connection: one consistent view of the books."""
    async with engine.connect() as conn:
        snapshot = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with snapshot.begin():
            yield snapshot


@dataclass(frozen=True)
class Balances:
    """Both customers' accounts (including any the attacker opened) at one point in time."""

    owner: dict[uuid.UUID, uuid.UUID]
    currency: dict[uuid.UUID, str]
    posted: dict[uuid.UUID, int]
    held: dict[uuid.UUID, int]

    @classmethod
    async def read(cls, conn: AsyncConnection, world: World) -> Balances:
        """Read them in the snapshot of `conn`."""
        rows = (await conn.execute(_ACCOUNTS, {"a": world.attacker_id, "v": world.victim_id})).all()
        return cls(
            owner={r.id: r.owner for r in rows},
            currency={r.id: str(r.currency) for r in rows},
            posted={r.id: int(r.posted) for r in rows},
            held={r.id: int(r.held) for r in rows},
        )

    def accounts(self, owner: uuid.UUID) -> set[uuid.UUID]:
        """The customer's account ids."""
        return {account for account, who in self.owner.items() if who == owner}

    def total(self, owner: uuid.UUID) -> dict[str, int]:
        """The customer's posted total per currency."""
        out: dict[str, int] = defaultdict(int)
        for account in self.accounts(owner):
            out[self.currency[account]] += self.posted[account]
        return dict(out)
