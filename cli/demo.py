"""Demo data for `vortex dev --demo`: a ready-to-use customer with accounts and a few months of
realistic, categorized transactions.

Idempotent: the user is found by email, accounts and journal entries carry deterministic
idempotency keys, and the schedule is anchored on the demo user's creation time, so running it
again (even weeks later) replays every ledger operation instead of posting new ones. Money moves
only through the ledger's functions and, for card and cash history, the signed processor feed,
so the invariant check passes afterwards. The schedule itself is `cli.demo_schedule`.

The credentials are fixed and printed: this is development data, never for production.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

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
from cli.demo_schedule import CURRENCIES, DEMO_ACCOUNTS, DemoEvent, demo_schedule
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
from models.ledger.tables import Direction, LedgerAccount, Transaction
from models.money import format_amount
from models.transactions.schemas import ProcessorEvent
from processorsim import ProcessorFeed, processor_event

DEMO_EMAIL = "demo@vortexcore.dev"


DEMO_PASSWORD = "vortex-demo-Passw0rd-2024"  # noqa: S105 - printed demo credential, dev only


DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPVORTEXCOREDEMOAB"  # noqa: S105 - printed, dev only


DEMO_RECOVERY_CODES: tuple[str, ...] = tuple(f"demo-{n:04d}-vrtx-core" for n in range(1, 11))


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
    account_id, currency = accounts[event.account], CURRENCIES[event.account]
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
    currency = CURRENCIES[event.account]
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


__all__ = ["DEMO_EMAIL", "DemoCredentials", "DemoSeedError", "seed_demo"]
