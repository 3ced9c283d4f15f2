"""The demo customer's accounts and history as a pure, deterministic schedule (no I/O): the same
anchor always gives the same events, so reseeding is idempotent.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.ledger.tables import AccountType, Direction

DEMO_MONTHS = 4  # full calendar months of history before the current one


@dataclass(frozen=True)
class DemoAccount:
    """One of the demo user's accounts."""

    key: str
    name: str
    currency: str
    type: AccountType


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("eur-checking", "Everyday EUR", "EUR", AccountType.CHECKING),
    DemoAccount("eur-savings", "Savings EUR", "EUR", AccountType.SAVINGS),
    DemoAccount("usd-checking", "Travel USD", "USD", AccountType.CHECKING),
)


CURRENCIES = {spec.key: spec.currency for spec in DEMO_ACCOUNTS}


OPENING_BALANCES: dict[str, int] = {
    "eur-checking": 300_000,
    "eur-savings": 800_000,
    "usd-checking": 120_000,
}


@dataclass(frozen=True)
class DemoEvent:
    """One thing that happens to the demo user's money."""

    key: str  # unique and stable: the idempotency key / external id suffix
    at: datetime
    account: str  # DemoAccount.key
    amount: int  # minor units, > 0
    direction: Direction
    kind: str  # card | cash: an external transaction; incoming_payment | outgoing_payment |
    # funding: a journal entry with the external settlement account; savings: an own transfer
    description: str
    merchant: str | None = None
    counterparty: str | None = None
    to_account: str | None = None  # for savings transfers


@dataclass
class _Month:
    year: int
    month: int
    rng: random.Random = field(init=False)
    events: list[DemoEvent] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Seeded per month, not per run: the same month always gets the same transactions.
        self.rng = random.Random(f"vortex-demo-{self.label}")  # noqa: S311 - not security

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def at(self, day: int, hour: int | None = None) -> datetime:
        hour = self.rng.randint(8, 21) if hour is None else hour
        return datetime(self.year, self.month, day, hour, self.rng.randint(0, 59), tzinfo=UTC)

    def add(
        self,
        slug: str,
        day: int,
        amount: int,
        description: str,
        *,
        account: str = "eur-checking",
        direction: Direction = Direction.DEBIT,
        kind: str = "card",
        merchant: str | None = None,
        counterparty: str | None = None,
        hour: int | None = None,
        to_account: str | None = None,
    ) -> None:
        n = self.counters[slug] = self.counters.get(slug, 0) + 1
        self.events.append(
            DemoEvent(
                key=f"{self.label}-{slug}-{n}",
                at=self.at(day, hour),
                account=account,
                amount=amount,
                direction=direction,
                kind=kind,
                description=description,
                merchant=merchant,
                counterparty=counterparty,
                to_account=to_account,
            )
        )

    def cents(self, low: float, high: float) -> int:
        return int(self.rng.uniform(low, high) * 100)

    def days(self, count: int) -> list[int]:
        return sorted(self.rng.sample(range(1, 29), count))


_GROCERS = ("Rewe", "Lidl", "Aldi Nord", "Edeka", "Whole Foods Market")


_DINING = ("Starbucks", "Pizza Express", "Sushi Bar Kyoto", "Cafe Einstein", "Burger Meister")


_SHOPS = ("Amazon", "Zalando", "IKEA", "Decathlon")


def _month_events(m: _Month) -> list[DemoEvent]:
    name = datetime(m.year, m.month, 1).strftime("%B %Y")
    m.add(
        "rent",
        1,
        115_000,
        f"Rent {name}",
        kind="outgoing_payment",
        counterparty="Hausverwaltung Schmidt",
        hour=7,
    )
    m.add("metro", 2, 8_600, "Monthly pass", merchant="BVG Metro", hour=8)
    m.add("broadband", 3, 3_999, "Broadband subscription", merchant="Vodafone", hour=6)
    m.add("gym", 4, 2_499, "Membership", merchant="FitX Gym", hour=6)
    m.add("electricity", 5, m.cents(55, 85), "Electricity bill", merchant="Vattenfall", hour=6)
    m.add("netflix", 7, 1_399, "Subscription", merchant="Netflix", hour=3)
    m.add("spotify", 12, 1_099, "Premium subscription", merchant="Spotify", hour=3)
    for day in m.days(7):
        m.add("groceries", day, m.cents(8, 95), "Card payment", merchant=m.rng.choice(_GROCERS))
    for day in m.days(5):
        m.add("dining", day, m.cents(4, 60), "Card payment", merchant=m.rng.choice(_DINING))
    for day in m.days(2):
        m.add("taxi", day, m.cents(9, 28), "Ride", merchant="Uber")
    m.add("fuel", m.days(1)[0], m.cents(45, 70), "Fuel", merchant="Shell")
    for day in m.days(m.rng.randint(1, 2)):
        m.add("shopping", day, m.cents(15, 120), "Online order", merchant=m.rng.choice(_SHOPS))
    m.add("pharmacy", m.days(1)[0], m.cents(7, 30), "Pharmacy", merchant="DocMorris Pharmacy")
    m.add(
        "cash",
        m.days(1)[0],
        m.rng.choice((5_000, 10_000)),
        "Cash withdrawal",
        kind="cash",
        merchant="ATM Sparkasse",
    )
    m.add(
        "salary",
        27,
        345_000,
        f"Salary {name}",
        direction=Direction.CREDIT,
        kind="incoming_payment",
        counterparty="Northwind GmbH",
        hour=6,
    )
    m.add(
        "savings", 28, 40_000, "Monthly savings", kind="savings", to_account="eur-savings", hour=9
    )
    usd = "usd-checking"
    m.add(
        "freelance",
        15,
        85_000,
        f"Invoice {name}",
        account=usd,
        direction=Direction.CREDIT,
        kind="incoming_payment",
        counterparty="Contoso LLC",
        hour=15,
    )
    m.add("games", m.days(1)[0], 1_999, "Game purchase", account=usd, merchant="Steam")
    m.add(
        "online", m.days(1)[0], m.cents(30, 80), "Online order", account=usd, merchant="Amazon.com"
    )
    m.add("taxi-usd", m.days(1)[0], m.cents(15, 40), "Ride", account=usd, merchant="Uber")
    if m.month % 3 == 0:
        m.add("airbnb", 20, 42_000, "Weekend stay", account=usd, merchant="Airbnb")
    return m.events


def demo_schedule(anchor: datetime) -> list[DemoEvent]:
    """Every demo event from the first day of DEMO_MONTHS months before `anchor`'s month up to
    `anchor` (exclusive), in chronological order, opening balances first."""
    anchor = anchor.astimezone(UTC)
    year, month = anchor.year, anchor.month - DEMO_MONTHS
    while month < 1:
        year, month = year - 1, month + 12
    start = datetime(year, month, 1, tzinfo=UTC)
    events = [
        DemoEvent(
            key=f"opening-{key}",
            at=start,
            account=key,
            amount=amount,
            direction=Direction.CREDIT,
            kind="funding",
            description="Opening balance",
        )
        for key, amount in OPENING_BALANCES.items()
    ]
    for y, mo in _months(year, month, anchor):
        events += [e for e in _month_events(_Month(y, mo)) if start < e.at < anchor]
    # Stable order: by time, then key, so replays post in the same order.
    return sorted(events, key=lambda e: (e.at, e.key))


def _months(year: int, month: int, until: datetime) -> Iterator[tuple[int, int]]:
    while (year, month) <= (until.year, until.month):
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
