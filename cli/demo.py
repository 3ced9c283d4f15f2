"""Demo data for `vortex dev --demo`: a ready-to-use customer with accounts and a few months of
realistic, categorized transactions.

Idempotent: the user is found by email, accounts and journal entries carry deterministic
idempotency keys, and the schedule is anchored on the demo user's creation time, so running it
again (even weeks later) replays every ledger operation instead of posting new ones. Money only
moves through the ledger's functions, so the invariant check passes afterwards.

The credentials are fixed and printed: this is development data, never for production.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pyotp
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.ledger import (
    ensure_system_accounts,
    open_account,
    post_entry,
    transfer,
)
from api.auth.totp import provisioning_uri
from core.crypto import Crypto, crypto_for, hash_password, verify_password
from core.db import SessionFactory, create_engine, create_session_factory, transaction
from core.settings import Settings
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import RecoveryCode, User, UserStatus
from models.ledger.payloads import (
    EnsureSystemAccountsInput,
    EntryLeg,
    LedgerTransferInput,
    OpenAccountInput,
    PostEntryInput,
)
from models.ledger.tables import AccountType, Direction, LedgerAccount, Transaction
from models.money import format_amount
from models.transactions.schemas import ProcessorEvent
from processorsim import ProcessorFeed, processor_event

DEMO_EMAIL = "demo@vortexcore.dev"
DEMO_PASSWORD = "vortex-demo-Passw0rd-2024"  # noqa: S105 - printed demo credential, dev only
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPVORTEXCOREDEMOAB"  # noqa: S105 - printed, dev only
DEMO_RECOVERY_CODES: tuple[str, ...] = tuple(f"demo-{n:04d}-vrtx-core" for n in range(1, 11))
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
_CURRENCIES = {spec.key: spec.currency for spec in DEMO_ACCOUNTS}
OPENING_BALANCES: dict[str, int] = {
    "eur-checking": 300_000,
    "eur-savings": 800_000,
    "usd-checking": 120_000,
}


@dataclass(frozen=True)
class DemoCredentials:
    """How to log in as the demo user, and what was seeded."""

    user_id: uuid.UUID
    email: str
    password: str
    totp_secret: str
    otpauth_uri: str
    recovery_codes: tuple[str, ...]
    accounts: dict[str, tuple[uuid.UUID, str]]  # name -> (id, number)
    transactions: int

    def describe(self) -> str:
        """The banner `vortex dev --demo` prints."""
        lines = [
            "Demo customer (development data; the credentials are public):",
            f"  email          {self.email}",
            f"  password       {self.password}",
            f"  TOTP secret    {self.totp_secret}   (current code: "
            f"{pyotp.TOTP(self.totp_secret).now()})",
            f"  otpauth URI    {self.otpauth_uri}",
            f"  recovery codes {', '.join(self.recovery_codes)}",
            f"  transactions   {self.transactions}",
        ]
        lines += [
            f"  account        {name}: {number}" for name, (_, number) in self.accounts.items()
        ]
        return "\n".join(lines)


# --- the schedule (pure and deterministic) ----------------------------------------------------


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


# --- seeding ----------------------------------------------------------------------------------


def _recovery_digest(crypto: Crypto, code: str) -> str:
    # Same normalization and key as api.auth.registration.recovery_code_digest (which needs the
    # API's Services); tests/test_demo_seed.py logs in with a recovery code to keep them in step.
    return crypto.digest("recovery-code", code.strip().lower().replace(" ", ""))


async def _ensure_user(session: AsyncSession, crypto: Crypto) -> tuple[User, bool]:
    """The demo user, created or repaired so that the printed credentials work."""
    user = (
        await session.execute(
            select(User).where(func.lower(col(User.email)) == DEMO_EMAIL).with_for_update()
        )
    ).scalar_one_or_none()
    created = user is None
    if user is None:
        now = utcnow()
        user = User(
            email=DEMO_EMAIL,
            first_name="Dana",
            last_name="Demo",
            password_hash=hash_password(DEMO_PASSWORD),
            status=UserStatus.ACTIVE,
            mfa_secret_encrypted=crypto.encrypt(DEMO_TOTP_SECRET),
            mfa_enabled=True,
            created_at=now,
            updated_at=now,
            activated_at=now,
        )
        session.add(user)
        await session.flush()
        return user, created
    # Only touch what differs, so a second run writes nothing new.
    if not verify_password(user.password_hash, DEMO_PASSWORD):
        user.password_hash = hash_password(DEMO_PASSWORD)
    try:
        secret_ok = (
            user.mfa_secret_encrypted is not None
            and crypto.decrypt(user.mfa_secret_encrypted) == DEMO_TOTP_SECRET
        )
    except ValueError:  # encrypted under another VORTEX_SECRET_KEY
        secret_ok = False
    if not secret_ok:
        user.mfa_secret_encrypted = crypto.encrypt(DEMO_TOTP_SECRET)
    if user.status != UserStatus.ACTIVE or not user.mfa_enabled:
        user.status, user.mfa_enabled = UserStatus.ACTIVE, True
        user.activated_at = user.activated_at or utcnow()
    return user, created


class DemoSeedError(RuntimeError):
    """The processor feed refused a demo transaction (the platform is misconfigured)."""


async def _seed_customer(
    session: AsyncSession, crypto: Crypto
) -> tuple[User, bool, dict[str, uuid.UUID]]:
    """The demo user with re-armed recovery codes and its accounts (one transaction)."""
    user, created = await _ensure_user(session, crypto)
    # Printed codes must work: re-arm any the developer already used.
    statement = insert(RecoveryCode).values(
        [
            {"user_id": user.id, "code_digest": _recovery_digest(crypto, c)}
            for c in DEMO_RECOVERY_CODES
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["code_digest"],
            set_={"used_at": None},
            where=(col(RecoveryCode.user_id) == user.id) & col(RecoveryCode.used_at).is_not(None),
        )
    )
    accounts: dict[str, uuid.UUID] = {}
    for spec in DEMO_ACCOUNTS:
        opened = await open_account(
            session,
            OpenAccountInput(
                idempotency_key=f"demo:{user.id}:{spec.key}",
                owner_user_id=user.id,
                currency=spec.currency,
                type=spec.type,
                name=spec.name,
            ),
        )
        accounts[spec.key] = opened.account_id
        await ensure_system_accounts(session, EnsureSystemAccountsInput(currency=spec.currency))
    return user, created, accounts


async def _book_ops_event(
    session: AsyncSession,
    user: User,
    event: DemoEvent,
    accounts: dict[str, uuid.UUID],
) -> None:
    """Ops-side history: opening balances, salary and rent against external settlement, and
    own transfers. Not reachable by a customer; card and cash go through the processor feed."""
    account_id, currency = accounts[event.account], _CURRENCIES[event.account]
    if event.kind == "savings":
        assert event.to_account is not None
        await transfer(
            session,
            LedgerTransferInput(
                idempotency_key=f"demo:{user.id}:{event.key}",
                from_account_id=account_id,
                to_account_id=accounts[event.to_account],
                amount=event.amount,
                currency=currency,
                description=event.description,
                occurred_at=event.at,
                owner_user_id=user.id,
            ),
        )
        return
    settlement = await ensure_system_accounts(session, EnsureSystemAccountsInput(currency=currency))
    signed = event.amount if event.direction == Direction.CREDIT else -event.amount
    await post_entry(
        session,
        PostEntryInput(
            idempotency_key=f"demo:{user.id}:{event.key}",
            kind=event.kind,
            description=event.description,
            occurred_at=event.at,
            legs=[
                EntryLeg(
                    account_id=account_id,
                    amount=signed,
                    currency=currency,
                    counterparty=event.counterparty,
                ),
                EntryLeg(
                    account_id=settlement.external_settlement, amount=-signed, currency=currency
                ),
            ],
        ),
    )


def _card_event(event: DemoEvent, number: str) -> ProcessorEvent:
    """The processor's report of a demo card or cash transaction (stable ids: reseeding
    redelivers the same events, which the feed answers as duplicates)."""
    currency = _CURRENCIES[event.account]
    return processor_event(
        number,
        format_amount(event.amount, currency),
        currency,
        direction=event.direction,
        external_id=f"demo-{event.key}",
        event_id=f"demo-{event.key}",
        kind=event.kind,
        occurred_at=event.at,
        description=event.description,
        merchant=event.merchant,
        counterparty=event.counterparty,
    )


async def _seed(sessions: SessionFactory, crypto: Crypto, feed: ProcessorFeed) -> DemoCredentials:
    async with transaction(sessions) as session:
        user, created, accounts = await _seed_customer(session, crypto)
        numbers = {
            key: number
            for key, number in (
                await session.execute(
                    select(col(LedgerAccount.id), col(LedgerAccount.number)).where(
                        col(LedgerAccount.id).in_(accounts.values())
                    )
                )
            ).tuples()
        }
    # In time order: a card payment needs the salary that came before it.
    for event in demo_schedule(user.created_at):
        if event.kind in ("card", "cash"):
            ack = await feed.send(_card_event(event, numbers[accounts[event.account]] or ""))
            if not ack.duplicate and ack.outcome != "recorded":
                raise DemoSeedError(f"the processor feed answered {ack} for {event.key}")
        else:
            async with transaction(sessions) as session:
                await _book_ops_event(session, user, event, accounts)
    async with transaction(sessions) as session:
        if created:
            await record_audit(
                session, "demo.seeded", actor_user_id=None, subject=f"user:{user.id}"
            )
        rows = (
            await session.execute(
                select(col(LedgerAccount.name), col(LedgerAccount.id), col(LedgerAccount.number))
                .where(col(LedgerAccount.id).in_(accounts.values()))
                .order_by(col(LedgerAccount.name))
            )
        ).all()
        count = await session.scalar(
            select(func.count()).select_from(Transaction).where(col(Transaction.user_id) == user.id)
        )
    return DemoCredentials(
        user_id=user.id,
        email=DEMO_EMAIL,
        password=DEMO_PASSWORD,
        totp_secret=DEMO_TOTP_SECRET,
        otpauth_uri=provisioning_uri(DEMO_TOTP_SECRET, DEMO_EMAIL),
        recovery_codes=DEMO_RECOVERY_CODES,
        accounts={name: (account_id, number or "") for name, account_id, number in rows},
        transactions=int(count or 0),
    )


async def seed_demo(
    settings: Settings, api: httpx.AsyncClient, *, sessions: SessionFactory | None = None
) -> DemoCredentials:
    """Create (or confirm) the demo customer, accounts and history; returns the credentials.

    `api` reaches the running API (with workers): card and cash history is delivered as signed
    events to its processor feed, the only path on which such transactions move money.
    """
    crypto = crypto_for(settings.secret_key.get_secret_value())
    feed = ProcessorFeed(api, settings.processor_webhook_secret.get_secret_value())
    if sessions is not None:
        return await _seed(sessions, crypto, feed)
    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        return await _seed(create_session_factory(engine), crypto, feed)
    finally:
        await engine.dispose()


__all__ = ["DEMO_EMAIL", "DemoCredentials", "DemoSeedError", "demo_schedule", "seed_demo"]
