"""Transactions API end to end: manual entries (memos that move no money: replay, conflicts,
refusals, deletion), listing with every filter, keyset pages, full-text search, analytics,
recategorizing, and the authorization boundary between two customers on every route.
Card and cash transactions that move money are tested through the feed in
test_processor_feed.py."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from activities import ledger
from api.auth.sessions import SessionService
from api.services import Services
from core.db import SessionFactory
from models.ledger.payloads import ExternalEntryInput, PlaceHoldInput
from models.ledger.tables import Direction
from tests.flows import fund
from tests.ledger_support import assert_ledger_ok, new_user, open_account, run, snapshot

T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


@dataclass
class Caller:
    """An active customer with a real access token (created directly: registration has its own
    tests, and skipping its workflow keeps this file fast)."""

    user_id: uuid.UUID
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        """Authorization header."""
        return {"Authorization": f"Bearer {self.access_token}"}


async def _caller(services: Services, name: str) -> Caller:
    user_id = await new_user(services.sessions, name)
    await open_account(services.sessions, user_id, "EUR", "Main account")
    pair = await SessionService(services).issue_session(user_id)
    return Caller(user_id, pair.access_token)


@pytest.fixture
async def alice(api: httpx.AsyncClient, services: Services) -> Caller:
    """A customer with a EUR main account."""
    return await _caller(services, "alice")


@pytest.fixture
async def bob(api: httpx.AsyncClient, services: Services) -> Caller:
    """Another customer with a EUR main account."""
    return await _caller(services, "bob")


async def _main_account(api: httpx.AsyncClient, who: Caller) -> str:
    accounts = (await api.get("/api/accounts", headers=who.auth)).json()["items"]
    return str(accounts[0]["id"])


async def _open(api: httpx.AsyncClient, who: Caller, currency: str, name: str) -> str:
    response = await api.post(
        "/api/accounts", headers=who.auth, json={"currency": currency, "name": name}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _body(account_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "amount": "12.34",
        "currency": "EUR",
        "direction": "debit",
        "merchant": "Lidl Berlin",
        "description": "Card payment",
    } | overrides


async def _seed(
    sessions: SessionFactory,
    account_id: str,
    amount: int,
    *,
    direction: Direction = Direction.DEBIT,
    currency: str = "EUR",
    merchant: str | None = None,
    description: str = "",
    occurred_at: datetime = T0,
    category: str | None = None,
) -> str:
    """Record a transaction straight through the ledger (fast setup for the read routes)."""
    result = await run(
        sessions,
        ledger.record_external_transaction,
        ExternalEntryInput(
            account_id=uuid.UUID(account_id),
            external_id=f"seed-{uuid.uuid4()}",
            amount=amount,
            currency=currency,
            direction=direction,
            merchant=merchant,
            description=description,
            category=category,
            occurred_at=occurred_at,
        ),
    )
    return str(result.transaction_id)


async def _account_of(sessions: SessionFactory, who: Caller) -> str:
    async with sessions() as session:
        found = await session.scalar(
            text("SELECT id FROM ledger_accounts WHERE owner_user_id = :u"), {"u": who.user_id}
        )
    return str(found)


async def _ids(api: httpx.AsyncClient, who: Caller, **params: Any) -> list[str]:
    response = await api.get("/api/transactions", headers=who.auth, params=params)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(payload: list[Any]) -> str:
    """A cursor-shaped value we forge to show the API refuses it."""
    return _b64(json.dumps(payload).encode())


def _problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(f"/{slug}"), response.text


# --- manual entries (memos: they move no money) ------------------------------------------------


def _memo(key: str = "memo-0001") -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_a_manual_entry_is_a_memo_that_moves_no_money(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    account = await _main_account(api, alice)
    await fund(sessions, account, 10_000, "EUR")
    before = (await api.get(f"/api/accounts/{account}/balance", headers=alice.auth)).json()
    totals_before = (await api.get("/api/transactions/analytics", headers=alice.auth)).json()
    headers = alice.auth | _memo()

    first = await api.post("/api/transactions", headers=headers, json=_body(account))
    again = await api.post("/api/transactions", headers=headers, json=_body(account))
    changed = await api.post("/api/transactions", headers=headers, json=_body(account, amount="1"))
    credit = await api.post(
        "/api/transactions",
        headers=alice.auth | _memo("memo-0002"),
        json=_body(account, amount="5000.00", direction="credit", merchant=None),
    )
    after = (await api.get(f"/api/accounts/{account}/balance", headers=alice.auth)).json()
    totals_after = (await api.get("/api/transactions/analytics", headers=alice.auth)).json()
    listed = await _ids(api, alice, status="memo")

    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/api/transactions/{first.json()['id']}"
    view = first.json()
    assert view["status"] == "memo"
    assert view["kind"] == "manual"
    assert view["amount"] == {"amount": "12.34", "amount_minor": 1234, "currency": "EUR"}
    assert view["direction"] == "debit"
    assert view["category"] == "groceries"  # rule-based, as for real transactions
    assert again.status_code == 200, again.text
    assert again.json()["id"] == view["id"]
    _problem(changed, 422, "idempotency-key-reused")
    assert credit.status_code == 201, credit.text
    assert credit.json()["status"] == "memo"
    # A 5,000 "credit" note and a debit note: the money is exactly where it was.
    assert after == before
    assert totals_after == totals_before
    assert sorted(listed) == sorted([view["id"], credit.json()["id"]])
    async with sessions() as session:
        linked = (
            await session.execute(
                text(
                    "SELECT count(*) FROM transactions WHERE status = 'memo' AND "
                    "(journal_entry_id IS NOT NULL OR hold_id IS NOT NULL)"
                )
            )
        ).scalar_one()
    assert linked == 0
    await assert_ledger_ok(sessions)


async def test_a_memo_cannot_point_at_money_even_written_directly(
    alice: Caller, sessions: SessionFactory
) -> None:
    tid = await _seed(
        sessions, await _account_of(sessions, alice), 1_000, direction=Direction.CREDIT
    )

    with pytest.raises(IntegrityError, match="ck_transactions_memo_moves_no_money"):
        async with sessions() as session, session.begin():
            await session.execute(
                text("UPDATE transactions SET status = 'memo' WHERE id = :id"), {"id": tid}
            )


async def test_manual_entry_refusals_change_nothing(
    api: httpx.AsyncClient, alice: Caller, bob: Caller, sessions: SessionFactory
) -> None:
    account = await _main_account(api, alice)
    closed = await _open(api, alice, "EUR", "Old")
    assert (await api.delete(f"/api/accounts/{closed}", headers=alice.auth)).status_code == 200
    bobs = await _main_account(api, bob)
    before = await snapshot(sessions)

    def post(**overrides: Any) -> Any:
        return api.post(
            "/api/transactions", headers=alice.auth | _memo(), json=_body(account) | overrides
        )

    _problem(
        await api.post("/api/transactions", headers=alice.auth, json=_body(account)),
        400,
        "idempotency-key-required",
    )
    _problem(await post(account_id=closed), 409, "account-closed")
    _problem(await post(account_id=bobs), 404, "not-found")
    _problem(await post(account_id=str(uuid.uuid4())), 404, "not-found")
    _problem(await post(amount=12.5), 422, "validation-error")
    _problem(await post(amount=12), 422, "validation-error")
    for bad in ("1.234", "0", "0.00", "-5.00", "abc", "1e3", "", "10000000000000.01"):
        _problem(await post(amount=bad), 422, "invalid-amount")
    _problem(await post(currency="XYZ"), 422, "unknown-currency")
    _problem(await post(currency="EURO"), 422, "validation-error")
    _problem(await post(currency="USD"), 422, "currency-mismatch")
    _problem(await post(currency="JPY", amount="5.5"), 422, "invalid-amount")
    _problem(await post(category="gambling"), 422, "invalid-category")
    _problem(await post(kind="cash"), 422, "validation-error")  # no such field on a memo
    _problem(await post(external_id="x"), 422, "validation-error")
    _problem(await post(direction="sideways"), 422, "validation-error")
    _problem(await post(occurred_at="2024-03-01T10:00:00"), 422, "validation-error")
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    _problem(await post(occurred_at=future), 422, "invalid-request")
    _problem(await post(balance="1000000"), 422, "validation-error")
    unauthenticated = await api.post("/api/transactions", headers=_memo(), json=_body(account))

    assert unauthenticated.status_code == 401
    assert await snapshot(sessions) == before
    await assert_ledger_ok(sessions)


async def test_only_manual_entries_can_be_deleted(
    api: httpx.AsyncClient, alice: Caller, bob: Caller, sessions: SessionFactory
) -> None:
    account = await _main_account(api, alice)
    memo = await api.post("/api/transactions", headers=alice.auth | _memo(), json=_body(account))
    real = await _seed(sessions, account, 2_000, direction=Direction.CREDIT)
    mid = memo.json()["id"]

    by_bob = await api.delete(f"/api/transactions/{mid}", headers=bob.auth)
    posted = await api.delete(f"/api/transactions/{real}", headers=alice.auth)
    deleted = await api.delete(f"/api/transactions/{mid}", headers=alice.auth)
    gone = await api.get(f"/api/transactions/{mid}", headers=alice.auth)
    twice = await api.delete(f"/api/transactions/{mid}", headers=alice.auth)

    _problem(by_bob, 404, "not-found")
    _problem(posted, 409, "invalid-state")
    assert deleted.status_code == 204
    _problem(gone, 404, "not-found")
    _problem(twice, 404, "not-found")
    assert await _ids(api, alice) == [real]
    await assert_ledger_ok(sessions)


# --- reading ----------------------------------------------------------------------------------


async def test_get_one_transaction(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    account = await _main_account(api, alice)
    tid = await _seed(sessions, account, 2_000, direction=Direction.CREDIT, description="Refund")

    found = await api.get(f"/api/transactions/{tid}", headers=alice.auth)
    missing = await api.get(f"/api/transactions/{uuid.uuid4()}", headers=alice.auth)
    malformed = await api.get("/api/transactions/not-a-uuid", headers=alice.auth)

    assert found.status_code == 200
    assert found.json()["amount"]["amount"] == "20.00"
    assert found.json()["account_id"] == account
    assert found.json()["occurred_at"].startswith("2024-03-10T12:00:00")
    _problem(missing, 404, "not-found")
    _problem(malformed, 422, "validation-error")


async def test_list_filters(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    eur = await _main_account(api, alice)
    usd = await _open(api, alice, "USD", "Dollars")
    await fund(sessions, eur, 100_000, "EUR")
    await fund(sessions, usd, 100_000, "USD")
    day = timedelta(days=1)
    groceries = await _seed(sessions, eur, 4_550, merchant="Rewe", occurred_at=T0)
    dinner = await _seed(sessions, eur, 7_000, merchant="Pizza Roma", occurred_at=T0 + day)
    refund = await _seed(
        sessions,
        eur,
        1_000,
        direction=Direction.CREDIT,
        merchant="Amazon",
        occurred_at=T0 + 2 * day,
    )
    taxi = await _seed(sessions, usd, 2_500, currency="USD", merchant="Uber", occurred_at=T0 + day)
    hold = await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(
            idempotency_key=f"hold-{uuid.uuid4()}",
            account_id=uuid.UUID(eur),
            amount=999,
            currency="EUR",
            merchant="Hotel Adlon",
        ),
    )
    pending = str(hold.transaction_id)

    assert len(await _ids(api, alice, category="income", direction="credit")) == 2  # fundings
    assert len(await _ids(api, alice, account_id=usd)) == 2
    assert await _ids(api, alice, account_id=usd, direction="debit") == [taxi]
    assert await _ids(api, alice, status="pending") == [pending]
    assert set(await _ids(api, alice, status="posted", direction="debit")) == {
        groceries,
        dinner,
        taxi,
    }
    assert await _ids(api, alice, category="groceries") == [groceries]
    assert await _ids(api, alice, category="dining") == [dinner]
    assert await _ids(api, alice, category="SHOPPING") == [refund]
    # Dates are inclusive whole UTC days; datetimes are instants (naive = UTC).
    assert await _ids(api, alice, **{"from": "2024-03-10", "to": "2024-03-10"}) == [groceries]
    assert set(await _ids(api, alice, **{"from": "2024-03-11", "to": "2024-03-12"})) == {
        refund,
        dinner,
        taxi,
    }
    assert await _ids(
        api,
        alice,
        **{"from": "2024-03-11T12:00:00Z", "to": "2024-03-11T12:00:00+00:00"},
        account_id=eur,
    ) == [dinner]
    assert await _ids(api, alice, **{"to": "2024-03-10T11:59:59"}) == []
    assert await _ids(
        api, alice, **{"from": "2024-03-11 13:00:00 01:00", "to": "2024-03-11"}, account_id=eur
    ) == [dinner]
    # Amount ranges: decimal strings in the account's currency or the given one, inclusive.
    assert set(await _ids(api, alice, account_id=eur, min_amount="10", max_amount="70.00")) == {
        groceries,
        dinner,
        refund,
    }
    assert await _ids(api, alice, currency="USD", min_amount="25.00", max_amount="25") == [taxi]
    assert await _ids(api, alice, currency="usd", max_amount="24.99") == []
    assert set(await _ids(api, alice, currency="EUR", max_amount="9.99")) == {pending}

    bad = {
        "from=yesterday": {"from": "yesterday"},
        "to=2024-13-01": {"to": "2024-13-01"},
        "from after to": {"from": "2024-03-12", "to": "2024-03-11"},
        "no currency": {"min_amount": "1.00"},
        "float-ish": {"currency": "EUR", "min_amount": "1.001"},
        "negative": {"currency": "EUR", "max_amount": "-1"},
        "min>max": {"currency": "EUR", "min_amount": "5", "max_amount": "4"},
        "unknown currency": {"currency": "XYZ"},
        "mismatch": {"currency": "USD", "account_id": eur},
        "direction": {"direction": "up"},
        "status": {"status": "lost"},
        "category": {"category": "gambling"},
        "account": {"account_id": "nope"},
    }
    slugs = {
        "no currency": "invalid-filter",
        "from=yesterday": "invalid-filter",
        "to=2024-13-01": "invalid-filter",
        "from after to": "invalid-filter",
        "min>max": "invalid-filter",
        "float-ish": "invalid-amount",
        "negative": "invalid-amount",
        "unknown currency": "unknown-currency",
        "mismatch": "currency-mismatch",
        "category": "invalid-category",
    }
    for name, params in bad.items():
        response = await api.get("/api/transactions", headers=alice.auth, params=params)
        _problem(response, 422, slugs.get(name, "validation-error"))
    _problem(
        await api.get(
            "/api/transactions", headers=alice.auth, params={"account_id": str(uuid.uuid4())}
        ),
        404,
        "not-found",
    )


async def test_cursor_pagination_walks_every_row_once(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    account = await _main_account(api, alice)
    await fund(sessions, account, 1_000_000, "EUR")
    # Ties on occurred_at on purpose: the id breaks them.
    for i in range(24):
        await _seed(sessions, account, 100 + i, occurred_at=T0 + timedelta(hours=i // 3))
    everything = await _ids(api, alice, limit=200)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/api/transactions", headers=alice.auth, params=params)).json()
        seen += [t["id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(everything) == 25  # 24 card payments + the funding
    assert seen == everything
    assert pages == 4
    rows = (await api.get("/api/transactions", headers=alice.auth)).json()["items"]
    keys = [(t["occurred_at"], t["id"]) for t in rows]
    assert keys == sorted(keys, reverse=True)
    for params in ({"limit": 201}, {"limit": 0}, {"limit": -1}):
        _problem(
            await api.get("/api/transactions", headers=alice.auth, params=params),
            422,
            "validation-error",
        )
    for garbage in ("!!!", _b64(b"not-json"), _cursor(["l", 1]), _cursor(["l", "x", "y"])):
        _problem(
            await api.get("/api/transactions", headers=alice.auth, params={"cursor": garbage}),
            422,
            "invalid-cursor",
        )


async def test_search_by_merchant_and_description_words(
    api: httpx.AsyncClient, alice: Caller, bob: Caller, sessions: SessionFactory
) -> None:
    account = await _main_account(api, alice)
    await fund(sessions, account, 100_000, "EUR")
    coffee = await _seed(sessions, account, 450, merchant="Starbucks", description="Flat white")
    beans = await _seed(
        sessions, account, 1_299, merchant="Rewe", description="Coffee beans and groceries"
    )
    train = await _seed(sessions, account, 8_990, merchant="Deutsche Bahn", description="Train")
    bobs = await _main_account(api, bob)
    await fund(sessions, bobs, 10_000, "EUR")
    await _seed(sessions, bobs, 500, merchant="Starbucks", description="Coffee")

    async def search(q: str, **params: Any) -> list[str]:
        response = await api.get(
            "/api/transactions/search", headers=alice.auth, params={"q": q} | params
        )
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await search("starbucks") == [coffee]
    assert await search("coffee") == [beans]  # stemmed description word; never bob's
    assert await search("groceries") == [beans]  # "grocery" stems the same
    assert await search("deutsche bahn") == [train]
    assert set(await search("flat OR train")) == {coffee, train}
    assert await search("coffee -beans") == []
    assert await search("the") == []  # only a stop word: nothing to match
    first = (
        await api.get(
            "/api/transactions/search",
            headers=alice.auth,
            params={"q": "starbucks OR rewe OR bahn", "limit": 2},
        )
    ).json()
    rest = (
        await api.get(
            "/api/transactions/search",
            headers=alice.auth,
            params={"q": "starbucks OR rewe OR bahn", "limit": 2, "cursor": first["next_cursor"]},
        )
    ).json()
    assert len(first["items"]) == 2
    assert rest["next_cursor"] is None
    assert {t["id"] for t in first["items"] + rest["items"]} == {coffee, beans, train}
    other_query = await api.get(
        "/api/transactions/search",
        headers=alice.auth,
        params={"q": "train", "cursor": first["next_cursor"]},
    )
    _problem(other_query, 422, "invalid-cursor")
    list_cursor = await api.get(
        "/api/transactions/search",
        headers=alice.auth,
        params={"q": "train", "cursor": _cursor(["l", T0.isoformat(), coffee])},
    )
    _problem(list_cursor, 422, "invalid-cursor")
    invalid: list[dict[str, str | int]] = [
        {},
        {"q": ""},
        {"q": "x" * 201},
        {"q": "a", "limit": 500},
    ]
    for params in invalid:
        _problem(
            await api.get("/api/transactions/search", headers=alice.auth, params=params),
            422,
            "validation-error",
        )
    _problem(
        await api.get("/api/transactions/search", headers=alice.auth, params={"q": "   "}),
        422,
        "invalid-filter",
    )


async def test_analytics_totals_per_category_and_month(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    eur = await _main_account(api, alice)
    usd = await _open(api, alice, "USD", "Dollars")
    march, april = T0, T0 + timedelta(days=30)  # 2024-03-10, 2024-04-09
    await _seed(
        sessions, eur, 300_000, direction=Direction.CREDIT, description="Salary", occurred_at=march
    )
    await _seed(
        sessions, eur, 300_000, direction=Direction.CREDIT, description="Salary", occurred_at=april
    )
    await _seed(sessions, eur, 4_550, merchant="Rewe", occurred_at=march)
    await _seed(sessions, eur, 1_275, merchant="Lidl", occurred_at=march)
    await _seed(sessions, eur, 2_000, merchant="Aldi", occurred_at=april)
    await _seed(sessions, eur, 3_333, merchant="Pizza Roma", occurred_at=april)
    await _seed(
        sessions,
        usd,
        50_000,
        currency="USD",
        direction=Direction.CREDIT,
        description="Freelance invoice",
        occurred_at=april,
    )
    await _seed(sessions, usd, 1_999, currency="USD", merchant="Netflix", occurred_at=april)
    await run(
        sessions,
        ledger.place_hold,
        PlaceHoldInput(
            idempotency_key="pending-hotel",
            account_id=uuid.UUID(eur),
            amount=10_000,
            currency="EUR",
            merchant="Hotel",
        ),
    )

    everything = await api.get("/api/transactions/analytics", headers=alice.auth)
    assert everything.status_code == 200, everything.text
    body = everything.json()

    def minor(rows: list[dict[str, Any]], **match: str) -> tuple[int, int, int]:
        found = [r for r in rows if all(r[k] == v for k, v in match.items())]
        assert len(found) == 1, (match, rows)
        row = found[0]
        return row["money_in"]["amount_minor"], row["money_out"]["amount_minor"], row["count"]

    assert minor(body["totals"], currency="EUR") == (600_000, 11_158, 6)  # the hold is pending
    assert minor(body["totals"], currency="USD") == (50_000, 1_999, 2)
    eur_total = next(t for t in body["totals"] if t["currency"] == "EUR")
    assert eur_total["net"] == {"amount": "5888.42", "amount_minor": 588_842, "currency": "EUR"}
    assert minor(body["by_category"], category="groceries", currency="EUR") == (0, 7_825, 3)
    assert minor(body["by_category"], category="dining", currency="EUR") == (0, 3_333, 1)
    assert minor(body["by_category"], category="salary", currency="EUR") == (600_000, 0, 2)
    assert minor(body["by_category"], category="entertainment", currency="USD") == (0, 1_999, 1)
    assert minor(body["by_category"], category="income", currency="USD") == (50_000, 0, 1)
    assert minor(body["by_month"], month="2024-03", currency="EUR") == (300_000, 5_825, 3)
    assert minor(body["by_month"], month="2024-04", currency="EUR") == (300_000, 5_333, 3)
    assert minor(body["by_month"], month="2024-04", currency="USD") == (50_000, 1_999, 2)
    assert [m["month"] for m in body["by_month"]] == ["2024-03", "2024-04", "2024-04"]

    april_eur = (
        await api.get(
            "/api/transactions/analytics",
            headers=alice.auth,
            params={"from": "2024-04-01", "to": "2024-04-30", "account_id": eur},
        )
    ).json()
    assert minor(april_eur["totals"], currency="EUR") == (300_000, 5_333, 3)
    assert [r["currency"] for r in april_eur["totals"]] == ["EUR"]
    assert april_eur["start"].startswith("2024-04-01T00:00:00")
    assert april_eur["end"].startswith("2024-05-01T00:00:00")
    empty = (
        await api.get(
            "/api/transactions/analytics", headers=alice.auth, params={"to": "2024-01-01"}
        )
    ).json()
    assert empty["totals"] == empty["by_category"] == empty["by_month"] == []
    _problem(
        await api.get("/api/transactions/analytics", headers=alice.auth, params={"from": "x"}),
        422,
        "invalid-filter",
    )


async def test_categorize(api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory) -> None:
    account = await _main_account(api, alice)
    await fund(sessions, account, 10_000, "EUR")
    tid = await _seed(sessions, account, 1_500, merchant="Corner Shop")

    changed = await api.post(
        f"/api/transactions/{tid}/categorize", headers=alice.auth, json={"category": " Dining "}
    )
    again = await api.post(
        f"/api/transactions/{tid}/categorize", headers=alice.auth, json={"category": "dining"}
    )
    read = await api.get(f"/api/transactions/{tid}", headers=alice.auth)
    unknown = await api.post(
        f"/api/transactions/{tid}/categorize", headers=alice.auth, json={"category": "gambling"}
    )
    extra = await api.post(
        f"/api/transactions/{tid}/categorize",
        headers=alice.auth,
        json={"category": "dining", "amount": "1.00"},
    )
    missing = await api.post(
        f"/api/transactions/{uuid.uuid4()}/categorize",
        headers=alice.auth,
        json={"category": "dining"},
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["category"] == "dining"
    assert again.status_code == 200
    assert read.json()["category"] == "dining"
    assert read.json()["amount"]["amount_minor"] == 1_500
    _problem(unknown, 422, "invalid-category")
    assert "dining" in unknown.json()["allowed"]
    _problem(extra, 422, "validation-error")
    _problem(missing, 404, "not-found")
    assert await _ids(api, alice, category="dining") == [tid]


# --- the authorization boundary ---------------------------------------------------------------


async def test_another_customers_transactions_are_invisible_and_untouchable(
    api: httpx.AsyncClient, alice: Caller, bob: Caller, sessions: SessionFactory
) -> None:
    account = await _main_account(api, alice)
    await fund(sessions, account, 10_000, "EUR")
    tid = await _seed(sessions, account, 1_234, merchant="Lidl Berlin")
    before = await snapshot(sessions)

    lists = await api.get("/api/transactions", headers=bob.auth)
    filtered = await api.get("/api/transactions", headers=bob.auth, params={"account_id": account})
    one = await api.get(f"/api/transactions/{tid}", headers=bob.auth)
    found = await api.get("/api/transactions/search", headers=bob.auth, params={"q": "lidl"})
    found_in = await api.get(
        "/api/transactions/search", headers=bob.auth, params={"q": "lidl", "account_id": account}
    )
    totals = await api.get("/api/transactions/analytics", headers=bob.auth)
    totals_of = await api.get(
        "/api/transactions/analytics", headers=bob.auth, params={"account_id": account}
    )
    record = await api.post("/api/transactions", headers=bob.auth | _memo(), json=_body(account))
    record_new = await api.post(
        "/api/transactions",
        headers=bob.auth | _memo("bob-1"),
        json=_body(account, direction="credit"),
    )
    delete = await api.delete(f"/api/transactions/{tid}", headers=bob.auth)
    recategorize = await api.post(
        f"/api/transactions/{tid}/categorize", headers=bob.auth, json={"category": "cash"}
    )

    assert lists.status_code == 200
    assert lists.json()["items"] == []
    _problem(filtered, 404, "not-found")
    _problem(one, 404, "not-found")
    assert found.status_code == 200
    assert found.json()["items"] == []
    _problem(found_in, 404, "not-found")
    assert totals.status_code == 200
    assert totals.json()["totals"] == []
    _problem(totals_of, 404, "not-found")
    _problem(record, 404, "not-found")
    _problem(record_new, 404, "not-found")
    _problem(delete, 404, "not-found")
    _problem(recategorize, 404, "not-found")
    assert await snapshot(sessions) == before
    mine = (await api.get(f"/api/transactions/{tid}", headers=alice.auth)).json()
    assert mine["category"] == "groceries"
    for path in (
        "/api/transactions",
        f"/api/transactions/{tid}",
        "/api/transactions/search?q=lidl",
        "/api/transactions/analytics",
    ):
        assert (await api.get(path)).status_code == 401
