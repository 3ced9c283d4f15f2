"""Ledger rules: happy paths of every operation, and bad input that raises a typed error and
changes nothing. Also currency parsing, account numbers and the categorizer."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from activities import ledger
from activities.categorize import CATEGORIES, categorize
from activities.ledger import LedgerError
from core.db import SessionFactory, transaction
from models.audit import AuditEvent
from models.base import utcnow
from models.ledger.payloads import (
    AccountRecord,
    CaptureHoldInput,
    CloseAccountInput,
    EnsureSystemAccountsInput,
    EntryLeg,
    ExpireHoldsInput,
    ExternalEntryInput,
    LedgerTransferInput,
    OpenAccountInput,
    PlaceHoldInput,
    PostEntryInput,
    RecategorizeInput,
    ReleaseHoldInput,
    TransactionRecord,
)
from models.ledger.tables import (
    AccountStatus,
    LedgerAccount,
    OutboxEvent,
    Transaction,
    transaction_search_column,
)
from models.money import (
    MAX_AMOUNT_MINOR,
    AmountError,
    CurrencyError,
    format_amount,
    get_currency,
    normalize_currency_code,
    parse_amount,
)
from tests.ledger_support import (
    assert_ledger_ok,
    balances,
    fund,
    funded_account,
    funded_pair,
    new_user,
    open_account,
    run,
    snapshot,
)

# --- currencies and amounts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("12.34", "EUR", 1234),
        ("0.01", "USD", 1),
        ("1.50", "EUR", 150),
        ("1.230", "EUR", 123),
        ("7", "EUR", 700),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("0.005", "BHD", 5),
        (" 3.10 ", "GBP", 310),
        (Decimal("2.5"), "CHF", 250),
        (42, "SEK", 4200),
    ],
)
def test_parse_amount_gives_exact_minor_units(value: Any, currency: str, minor: int) -> None:
    assert parse_amount(value, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("1.234", "EUR"),  # fractional cent
        ("1.5", "JPY"),  # yen has no minor unit
        ("0.0001", "KWD"),
        ("0", "EUR"),
        ("0.00", "EUR"),
        ("-1.00", "EUR"),
        ("1e3", "EUR"),
        ("1,00", "EUR"),
        ("abc", "EUR"),
        ("", "EUR"),
        ("NaN", "EUR"),
        (1.5, "EUR"),  # floats are refused outright
        (True, "EUR"),
        (str(MAX_AMOUNT_MINOR // 100 + 1), "EUR"),
        ("9" * 30, "EUR"),
    ],
)
def test_parse_amount_rejects_bad_amounts(value: Any, currency: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(value, currency)


def test_parse_amount_allows_negative_only_when_asked() -> None:
    assert parse_amount("-2.50", "EUR", positive=False) == -250
    with pytest.raises(AmountError):
        parse_amount("-0.00", "EUR", positive=False)


@pytest.mark.parametrize("code", ["XXX", "eur", "EURO", "", "12A"])
def test_unknown_or_malformed_currency_codes_are_rejected(code: str) -> None:
    with pytest.raises(CurrencyError):
        get_currency(code)


def test_currency_exponents_follow_iso_4217() -> None:
    assert {c: get_currency(c).exponent for c in ("EUR", "JPY", "KWD", "BHD", "USD")} == {
        "EUR": 2,
        "JPY": 0,
        "KWD": 3,
        "BHD": 3,
        "USD": 2,
    }
    assert normalize_currency_code(" chf ") == "CHF"


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (1234, "EUR", "12.34"),
        (5, "EUR", "0.05"),
        (-250, "USD", "-2.50"),
        (1500, "JPY", "1500"),
        (1234, "KWD", "1.234"),
        (0, "GBP", "0.00"),
    ],
)
def test_format_amount_round_trips(minor: int, currency: str, shown: str) -> None:
    assert format_amount(minor, currency) == shown
    if minor > 0:
        assert parse_amount(shown, currency) == minor


def test_account_numbers_are_twelve_digits_with_a_luhn_check_digit() -> None:
    numbers = {ledger.new_account_number() for _ in range(200)}
    assert all(len(n) == 12 and n.isdigit() and n[0] != "0" for n in numbers)
    assert all(ledger.is_valid_account_number(n) for n in numbers)
    sample = next(iter(numbers))
    tampered = sample[:5] + str((int(sample[5]) + 1) % 10) + sample[6:]
    assert not ledger.is_valid_account_number(tampered)


# --- categorizer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("merchant", "description", "kind", "expected"),
    [
        ("TESCO STORES 3021", "", "card", "groceries"),
        ("Uber Eats", "dinner", "card", "dining"),
        ("Uber", "ride home", "card", "transport"),
        ("Netflix.com", "", "card", "entertainment"),
        (None, "ACME Corp payroll", "card", "salary"),
        (None, "Monthly rent", "card", "utilities"),
        (None, "current account top-up", "card", "other"),
        ("Shell", "fuel", "card", "transport"),
        (None, "ATM cash withdrawal", "card", "cash"),
        (None, "anything", "cash", "cash"),
        (None, "to savings", "transfer", "transfer"),
        ("Unknown GmbH", "", "card", "other"),
    ],
)
def test_categorizer_uses_merchant_and_keywords(
    merchant: str | None, description: str, kind: str, expected: str
) -> None:
    assert categorize(merchant, description, kind=kind, direction="debit") == expected
    assert expected in CATEGORIES


def test_categorizer_calls_unmatched_credits_income() -> None:
    assert categorize("Someone", "", kind="card", direction="credit") == "income"


# --- happy paths -------------------------------------------------------------------------------


async def test_open_account_creates_an_empty_open_account_and_system_accounts(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)

    opened = await open_account(sessions, owner, "JPY", "Yen wallet")

    async with sessions() as session:
        account = await session.get(LedgerAccount, opened.account_id)
        kinds = (
            await session.execute(
                text("SELECT kind FROM ledger_accounts WHERE currency = 'JPY' ORDER BY kind")
            )
        ).scalars()
        kinds_list = list(kinds)
    assert account is not None
    view = AccountRecord.of(account)
    assert (view.posted, view.held, view.available, view.status) == (0, 0, 0, AccountStatus.OPEN)
    assert view.name == "Yen wallet"
    assert ledger.is_valid_account_number(opened.number)
    assert kinds_list == ["customer", "external_settlement", "fees", "suspense"]


async def test_transfer_moves_money_and_writes_transactions_and_events(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)
    main = await funded_account(sessions, owner, 10_000, name="Main")
    savings = await funded_account(sessions, owner, 0, name="Savings")

    result = await run(
        sessions,
        ledger.transfer,
        LedgerTransferInput(
            idempotency_key="t-1",
            from_account_id=main,
            to_account_id=savings,
            amount=2_500,
            currency="EUR",
            description="Rainy day",
            owner_user_id=owner,
        ),
    )

    assert [(p.account_id, p.amount, p.balance_after) for p in result.postings] == [
        (main, -2_500, 7_500),
        (savings, 2_500, 2_500),
    ]
    assert await balances(sessions, main, savings) == [(7_500, 0), (2_500, 0)]
    async with sessions() as session:
        rows = (
            (
                await session.execute(
                    select(Transaction).where(col(Transaction.journal_entry_id) == result.entry_id)
                )
            )
            .scalars()
            .all()
        )
        events = (
            (await session.execute(select(OutboxEvent).order_by(col(OutboxEvent.id))))
            .scalars()
            .all()
        )
    by_account = {t.account_id: TransactionRecord.of(t) for t in rows}
    assert by_account[main].direction == "debit"
    assert by_account[main].amount == 2_500
    assert by_account[savings].direction == "credit"
    assert by_account[savings].category == "transfer"
    assert by_account[main].counterparty == "Savings"  # own account: shown by name
    transfer_events = [
        e for e in events if e.payload.get("journal_entry_id") == str(result.entry_id)
    ]
    assert sorted(e.type for e in transfer_events) == ["transaction.created"] * 2
    balance_events = [e for e in events if e.type == "balance.updated"]
    assert balance_events[-1].payload["available"] == 2_500
    assert all(e.topic == "transaction.events" for e in events)
    await assert_ledger_ok(sessions)


async def test_transfer_to_another_customer_masks_their_account(sessions: SessionFactory) -> None:
    ada, bob = await new_user(sessions, "ada"), await new_user(sessions, "bob")
    a = await funded_account(sessions, ada, 1_000)
    opened_b = await open_account(sessions, bob, name="Bob's secret name")

    result = await run(
        sessions,
        ledger.transfer,
        LedgerTransferInput(
            idempotency_key="p2p",
            from_account_id=a,
            to_account_id=opened_b.account_id,
            amount=100,
            currency="EUR",
        ),
    )

    async with sessions() as session:
        row = await session.get(Transaction, result.postings[0].transaction_id)
    assert row is not None
    assert row.counterparty == f"Account ****{opened_b.number[-4:]}"


async def test_multi_leg_entry_may_span_currencies_when_each_balances(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)
    eur = await funded_account(sessions, owner, 10_000, "EUR")
    usd = await funded_account(sessions, owner, 0, "USD")
    async with transaction(sessions) as session:
        eur_sys = await ledger.ensure_system_accounts(
            session, EnsureSystemAccountsInput(currency="EUR")
        )
        usd_sys = await ledger.ensure_system_accounts(
            session, EnsureSystemAccountsInput(currency="USD")
        )

    await run(
        sessions,
        ledger.post_entry,
        PostEntryInput(
            idempotency_key="fx-1",
            kind="fx",
            description="EUR to USD",
            legs=[
                EntryLeg(account_id=eur, amount=-1_000, currency="EUR"),
                EntryLeg(account_id=eur_sys.suspense, amount=1_000, currency="EUR"),
                EntryLeg(account_id=usd_sys.suspense, amount=-1_100, currency="USD"),
                EntryLeg(account_id=usd, amount=1_100, currency="USD"),
            ],
        ),
    )

    assert await balances(sessions, eur, usd) == [(9_000, 0), (1_100, 0)]
    await assert_ledger_ok(sessions)


async def test_hold_capture_posts_part_and_releases_the_rest(sessions: SessionFactory) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 10_000)
    placed = await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(
            idempotency_key="h-1",
            account_id=account,
            amount=4_000,
            currency="EUR",
            description="Hotel deposit",
            merchant="Grand Hotel",
        ),
    )
    assert await balances(sessions, account) == [(10_000, 4_000)]

    captured = await run(
        sessions, ledger.capture_hold, CaptureHoldInput(hold_id=placed.hold_id, amount=3_000)
    )

    assert captured.status == "captured"
    assert captured.captured_amount == 3_000
    assert await balances(sessions, account) == [(7_000, 0)]
    async with sessions() as session:
        row = await session.get(Transaction, placed.transaction_id)
    assert row is not None
    assert (row.status, row.amount, row.journal_entry_id) == (
        "posted",
        3_000,
        captured.capture_entry_id,
    )
    assert row.category == "travel"
    await assert_ledger_ok(sessions)


async def test_released_and_expired_holds_free_the_funds(sessions: SessionFactory) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 10_000)
    base = utcnow()
    first, second = [
        await run(
            sessions,
            ledger.place_hold,
            PlaceHoldInput(
                idempotency_key=f"h-{n}",
                account_id=account,
                amount=1_000,
                currency="EUR",
                expires_at=base + timedelta(hours=n),
            ),
        )
        for n in (1, 2)
    ]
    assert await balances(sessions, account) == [(10_000, 2_000)]

    released = await run(sessions, ledger.release_hold, ReleaseHoldInput(hold_id=first.hold_id))
    expired = await run(
        sessions, ledger.expire_holds, ExpireHoldsInput(now=base + timedelta(hours=3))
    )

    assert released.status == "released"
    assert expired.expired == [second.hold_id]
    assert await balances(sessions, account) == [(10_000, 0)]
    async with sessions() as session:
        statuses = {
            t.hold_id: t.status
            for t in (await session.execute(select(Transaction))).scalars()
            if t.hold_id is not None
        }
    assert statuses == {first.hold_id: "released", second.hold_id: "expired"}
    await assert_ledger_ok(sessions)


async def test_close_account_sweeps_the_balance_to_a_sibling_account(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)
    old = await funded_account(sessions, owner, 5_000, name="Old")
    new = await funded_account(sessions, owner, 0, name="New")

    closed = await run(
        sessions,
        ledger.close_account,
        CloseAccountInput(account_id=old, sweep_to_account_id=new, owner_user_id=owner),
    )

    assert (closed.swept_amount, closed.sweep_to_account_id) == (5_000, new)
    assert await balances(sessions, old, new) == [(0, 0), (5_000, 0)]
    async with sessions() as session:
        account = await session.get(LedgerAccount, old)
    assert account is not None
    assert account.status == AccountStatus.CLOSED
    await assert_ledger_ok(sessions)


async def test_external_card_and_cash_transactions_move_money_with_settlement(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 10_000)

    spent = await run(
        sessions,
        ledger.record_external_transaction,
        ExternalEntryInput(
            account_id=account,
            external_id="card-001",
            amount=1_250,
            currency="EUR",
            direction="debit",
            merchant="Starbucks",
            description="Coffee and cake",
            owner_user_id=owner,
        ),
    )
    deposited = await run(
        sessions,
        ledger.record_external_transaction,
        ExternalEntryInput(
            account_id=account,
            external_id="cash-001",
            amount=5_000,
            currency="EUR",
            direction="credit",
            kind="cash",
            description="Branch deposit",
        ),
    )

    assert (spent.balance_after, deposited.balance_after) == (8_750, 13_750)
    async with sessions() as session:
        card = await session.get(Transaction, spent.transaction_id)
    assert card is not None
    assert (card.category, card.merchant, card.external_id) == ("dining", "Starbucks", "card-001")
    await assert_ledger_ok(sessions)


async def test_funding_is_audited(sessions: SessionFactory) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 0)

    result = await fund(sessions, account, 7_700)

    async with sessions() as session:
        event = (await session.execute(select(AuditEvent))).scalars().one()
    assert event.action == "ledger.funding"
    assert event.details["entry_id"] == str(result.entry_id)
    assert event.details["amount"] == 7_700


async def test_recategorize_sets_the_category_and_emits_an_update(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 1_000)
    spent = await run(
        sessions,
        ledger.record_external_transaction,
        ExternalEntryInput(
            account_id=account,
            external_id="x1",
            amount=100,
            currency="EUR",
            direction="debit",
            merchant="Mystery Ltd",
        ),
    )

    view = await run(
        sessions,
        ledger.recategorize_transaction,
        RecategorizeInput(
            transaction_id=spent.transaction_id, category="shopping", owner_user_id=owner
        ),
    )

    assert view.category == "shopping"
    async with sessions() as session:
        updates = await session.scalar(
            select(func.count()).where(col(OutboxEvent.type) == "transaction.updated")
        )
    assert updates == 1


async def test_full_text_search_matches_description_and_merchant(
    sessions: SessionFactory,
) -> None:
    owner = await new_user(sessions)
    account = await funded_account(sessions, owner, 10_000)
    for n, (merchant, description) in enumerate(
        [("Whole Foods Market", "weekly shop"), ("Ryanair", "Flights to Lisbon")]
    ):
        await run(
            sessions,
            ledger.record_external_transaction,
            ExternalEntryInput(
                account_id=account,
                external_id=f"fts-{n}",
                amount=100,
                currency="EUR",
                direction="debit",
                merchant=merchant,
                description=description,
            ),
        )

    async def search(q: str) -> list[str | None]:
        query = (
            select(col(Transaction.merchant))
            .where(transaction_search_column().op("@@")(func.websearch_to_tsquery("english", q)))
            .order_by(col(Transaction.merchant))
        )
        async with sessions() as session:
            return list((await session.execute(query)).scalars())

    assert await search("flight lisbon") == ["Ryanair"]
    assert await search("foods") == ["Whole Foods Market"]
    assert await search("nothing-like-this") == []


# --- bad input: typed error, nothing changed ----------------------------------------------------


async def expect_rejection(
    sessions: SessionFactory, error_type: str, operation: Any, req: Any
) -> LedgerError:
    """The operation raises `error_type` (non-retryable) and the ledger is unchanged."""
    before = await snapshot(sessions)
    with pytest.raises(LedgerError) as caught:
        await run(sessions, operation, req)
    assert caught.value.type == error_type, caught.value
    assert caught.value.non_retryable
    assert await snapshot(sessions) == before
    return caught.value


@pytest.fixture
async def pair(sessions: SessionFactory) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """(owner, funded EUR account with 10.00, empty EUR account)."""
    return await funded_pair(sessions)


def _transfer(src: uuid.UUID, dst: uuid.UUID, amount: int, currency: str = "EUR") -> Any:
    return LedgerTransferInput(
        idempotency_key=f"bad-{uuid.uuid4()}",
        from_account_id=src,
        to_account_id=dst,
        amount=amount,
        currency=currency,
    )


@pytest.mark.parametrize("amount", [0, -5, MAX_AMOUNT_MINOR + 1, 2**63])
async def test_transfer_rejects_zero_negative_and_overflowing_amounts(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID], amount: int
) -> None:
    _, a, b = pair
    await expect_rejection(
        sessions, ledger.INVALID_AMOUNT, ledger.transfer, _transfer(a, b, amount)
    )


async def test_transfer_rejects_unknown_and_mismatched_currencies(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    owner, a, b = pair
    await expect_rejection(
        sessions, ledger.UNKNOWN_CURRENCY, ledger.transfer, _transfer(a, b, 100, "XYZ")
    )
    await expect_rejection(
        sessions, ledger.CURRENCY_MISMATCH, ledger.transfer, _transfer(a, b, 100, "USD")
    )
    dollars = await funded_account(sessions, owner, 0, "USD")
    await expect_rejection(
        sessions, ledger.CURRENCY_MISMATCH, ledger.transfer, _transfer(a, dollars, 100)
    )


async def test_transfer_rejects_insufficient_available_funds(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    _, a, b = pair
    error = await expect_rejection(
        sessions, ledger.INSUFFICIENT_FUNDS, ledger.transfer, _transfer(a, b, 1_001)
    )
    assert error.info["available"] == 1_000
    await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(idempotency_key="h", account_id=a, amount=600, currency="EUR"),
    )
    # Posted is still 1000, but only 400 is available.
    await expect_rejection(
        sessions, ledger.INSUFFICIENT_FUNDS, ledger.transfer, _transfer(a, b, 401)
    )


async def test_closed_accounts_take_no_postings(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    _, a, b = pair
    await run(sessions, ledger.close_account, CloseAccountInput(account_id=b))
    await expect_rejection(sessions, ledger.ACCOUNT_CLOSED, ledger.transfer, _transfer(a, b, 100))
    await expect_rejection(
        sessions,
        ledger.ACCOUNT_CLOSED,
        ledger.place_hold,
        PlaceHoldInput(idempotency_key="h", account_id=b, amount=1, currency="EUR"),
    )


async def test_unknown_and_foreign_accounts_look_the_same(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    _, a, b = pair
    stranger = await new_user(sessions, "eve")
    await expect_rejection(
        sessions, ledger.UNKNOWN_ACCOUNT, ledger.transfer, _transfer(a, uuid.uuid4(), 100)
    )
    foreign = _transfer(a, b, 100).model_copy(update={"owner_user_id": stranger})
    await expect_rejection(sessions, ledger.UNKNOWN_ACCOUNT, ledger.transfer, foreign)
    await expect_rejection(
        sessions,
        ledger.UNKNOWN_ACCOUNT,
        ledger.record_external_transaction,
        ExternalEntryInput(
            account_id=b,
            external_id="e",
            amount=1,
            currency="EUR",
            direction="credit",
            owner_user_id=stranger,
        ),
    )
    await expect_rejection(
        sessions,
        ledger.UNKNOWN_ACCOUNT,
        ledger.close_account,
        CloseAccountInput(account_id=b, owner_user_id=stranger),
    )


async def test_entries_must_balance_and_name_each_account_once(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    _, a, b = pair

    def entry(*legs: tuple[uuid.UUID, int]) -> PostEntryInput:
        return PostEntryInput(
            idempotency_key=f"e-{uuid.uuid4()}",
            legs=[EntryLeg(account_id=acc, amount=amt, currency="EUR") for acc, amt in legs],
        )

    await expect_rejection(
        sessions, ledger.UNBALANCED_ENTRY, ledger.post_entry, entry((a, -100), (b, 99))
    )
    await expect_rejection(sessions, ledger.INVALID_REQUEST, ledger.post_entry, entry((a, -100)))
    await expect_rejection(
        sessions, ledger.INVALID_REQUEST, ledger.post_entry, entry((a, -100), (a, 100))
    )
    await expect_rejection(
        sessions, ledger.INVALID_AMOUNT, ledger.post_entry, entry((a, 0), (b, 0))
    )
    await expect_rejection(sessions, ledger.INVALID_REQUEST, ledger.transfer, _transfer(a, a, 100))


async def test_holds_are_resolved_once_and_never_past_their_amount_or_expiry(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    _, a, _ = pair
    await expect_rejection(
        sessions,
        ledger.INSUFFICIENT_FUNDS,
        ledger.place_hold,
        PlaceHoldInput(idempotency_key="too-big", account_id=a, amount=1_001, currency="EUR"),
    )
    placed = await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(idempotency_key="h", account_id=a, amount=500, currency="EUR"),
    )
    await expect_rejection(
        sessions,
        ledger.INVALID_AMOUNT,
        ledger.capture_hold,
        CaptureHoldInput(hold_id=placed.hold_id, amount=501),
    )
    await run(sessions, ledger.release_hold, ReleaseHoldInput(hold_id=placed.hold_id))
    await expect_rejection(
        sessions,
        ledger.HOLD_ALREADY_RESOLVED,
        ledger.capture_hold,
        CaptureHoldInput(hold_id=placed.hold_id),
    )
    await expect_rejection(
        sessions,
        ledger.UNKNOWN_HOLD,
        ledger.release_hold,
        ReleaseHoldInput(hold_id=uuid.uuid4()),
    )
    soon = await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(
            idempotency_key="soon",
            account_id=a,
            amount=100,
            currency="EUR",
            expires_at=utcnow() + timedelta(milliseconds=300),
        ),
    )
    async with transaction(sessions) as session:  # let the hold lapse without sleeping a test
        await session.execute(
            text("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": soon.hold_id},
        )
    await expect_rejection(
        sessions, ledger.HOLD_EXPIRED, ledger.capture_hold, CaptureHoldInput(hold_id=soon.hold_id)
    )


async def test_closing_refuses_balances_and_holds_without_a_valid_sweep(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    owner, a, b = pair
    await expect_rejection(
        sessions, ledger.ACCOUNT_NOT_EMPTY, ledger.close_account, CloseAccountInput(account_id=a)
    )
    stranger_account = await funded_account(sessions, await new_user(sessions, "eve"), 0)
    await expect_rejection(
        sessions,
        ledger.UNKNOWN_ACCOUNT,
        ledger.close_account,
        CloseAccountInput(account_id=a, sweep_to_account_id=stranger_account),
    )
    dollars = await funded_account(sessions, owner, 0, "USD")
    await expect_rejection(
        sessions,
        ledger.CURRENCY_MISMATCH,
        ledger.close_account,
        CloseAccountInput(account_id=a, sweep_to_account_id=dollars),
    )
    await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(idempotency_key="h", account_id=a, amount=1, currency="EUR"),
    )
    await expect_rejection(
        sessions,
        ledger.ACCOUNT_NOT_EMPTY,
        ledger.close_account,
        CloseAccountInput(account_id=a, sweep_to_account_id=b),
    )


async def test_bad_account_opening_and_categories_are_rejected(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    owner, a, _ = pair
    await expect_rejection(
        sessions,
        ledger.UNKNOWN_USER,
        ledger.open_account,
        OpenAccountInput(
            idempotency_key="o1", owner_user_id=uuid.uuid4(), currency="EUR", name="x"
        ),
    )
    await expect_rejection(
        sessions,
        ledger.UNKNOWN_CURRENCY,
        ledger.open_account,
        OpenAccountInput(idempotency_key="o2", owner_user_id=owner, currency="ABC", name="x"),
    )
    await expect_rejection(
        sessions,
        ledger.INVALID_REQUEST,
        ledger.open_account,
        OpenAccountInput(idempotency_key="o3", owner_user_id=owner, currency="EUR", name="  "),
    )
    spent = await run(
        sessions,
        ledger.record_external_transaction,
        ExternalEntryInput(
            account_id=a, external_id="c", amount=1, currency="EUR", direction="debit"
        ),
    )
    await expect_rejection(
        sessions,
        ledger.INVALID_CATEGORY,
        ledger.recategorize_transaction,
        RecategorizeInput(transaction_id=spent.transaction_id, category="yachts"),
    )
    await expect_rejection(
        sessions,
        ledger.UNKNOWN_TRANSACTION,
        ledger.recategorize_transaction,
        RecategorizeInput(
            transaction_id=spent.transaction_id, category="other", owner_user_id=uuid.uuid4()
        ),
    )


# --- the database backs the invariants itself ---------------------------------------------------


async def test_database_refuses_negative_available_and_edits_of_postings(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    _, a, b = pair
    await run(sessions, ledger.transfer, _transfer(a, b, 100))
    statements = [
        "UPDATE ledger_accounts SET held = posted + 1 WHERE kind = 'customer'",
        "UPDATE ledger_accounts SET held = -1",
        "UPDATE postings SET amount = amount * 2",
        "DELETE FROM journal_entries",
        "DELETE FROM ledger_accounts WHERE kind = 'customer'",
        "UPDATE ledger_accounts SET currency = 'USD'",
    ]
    for sql in statements:
        with pytest.raises(DBAPIError):
            async with transaction(sessions) as session:
                await session.execute(text(sql))
    await assert_ledger_ok(sessions)


async def test_database_refuses_unbalanced_postings_and_additions_to_old_entries(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    owner, a, b = pair
    c = await funded_account(sessions, owner, 0, name="C")
    d = await funded_account(sessions, owner, 0, name="D")
    result = await run(sessions, ledger.transfer, _transfer(a, b, 100))
    new_entry = uuid.uuid4()
    async with transaction(sessions) as session:
        await session.execute(
            text(
                "INSERT INTO journal_entries (id, idempotency_key, request_hash, kind, description)"
                " VALUES (:id, 'raw', 'x', 'raw', '')"
            ),
            {"id": new_entry},
        )
    cases = [
        (new_entry, [(a, -5), (b, 4)]),  # does not sum to zero
        (result.entry_id, [(c, -5), (d, 5)]),  # balanced, but the entry is already posted
    ]
    for entry_id, legs in cases:
        with pytest.raises(DBAPIError, match="journal entry"):
            async with transaction(sessions) as session:
                await session.execute(
                    text(
                        "INSERT INTO postings (entry_id, account_id, amount, currency, "
                        "balance_after) VALUES (:e, :a1, :m1, 'EUR', 0), (:e, :a2, :m2, 'EUR', 0)"
                    ),
                    {
                        "e": entry_id,
                        "a1": legs[0][0],
                        "m1": legs[0][1],
                        "a2": legs[1][0],
                        "m2": legs[1][1],
                    },
                )


async def test_customer_transfers_cannot_touch_system_accounts(
    sessions: SessionFactory, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID]
) -> None:
    owner, a, _ = pair
    async with transaction(sessions) as session:
        system = await ledger.ensure_system_accounts(
            session, EnsureSystemAccountsInput(currency="EUR")
        )
    to_fees = _transfer(a, system.fees, 100).model_copy(update={"owner_user_id": owner})

    await expect_rejection(sessions, ledger.INVALID_REQUEST, ledger.transfer, to_fees)
