"""The hot routes' orjson views write the very bytes the pydantic models would, on varied rows
(currencies of 0, 2 and 3 decimals, negative and huge amounts, missing optional fields,
timestamps with and without microseconds, non-ASCII text, ids as text or UUID objects)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import pytest
from asyncpg.pgproto import pgproto
from pydantic import BaseModel

from api import read_views
from api.pagination import encode_cursor
from api.payments.flow import payment_public
from api.routes.accounts import view_of
from api.routes.transactions import _page
from models.accounts.schemas import AccountList
from models.identity.schemas import ProfilePublic
from models.ledger.tables import AccountStatus, AccountType, Direction, TransactionStatus
from models.money import MAX_AMOUNT_MINOR
from models.payments.schemas import PaymentPage
from models.payments.tables import PaymentKind, PaymentStatus

CURRENCIES = ("EUR", "JPY", "KWD")
AMOUNTS = (0, 1, -5, 123456, MAX_AMOUNT_MINOR)
TEXTS = ("", "Café \u2013 Zürich ✓", 'quote " and \\ backslash', "line\nbreak")
TIMES = (
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1999, 6, 1, 0, 0, 0, 120, tzinfo=UTC),
)


def _id(n: int) -> Any:
    """An id as the fast queries read it (text, from PostgreSQL's `uuid::text`), or as asyncpg's
    UUID type or the standard one (both accepted, should a query read the uuid itself)."""
    value = uuid.UUID(int=n * 7919 + 1)
    return (str(value), pgproto.UUID(value.bytes), value)[n % 3]


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The plain strings asyncpg returns for an enum column."""
    return tuple(str(member.value) for member in enum)


def _pick(options: tuple[Any, ...], n: int) -> Any:
    return options[n % len(options)]


def _maybe(value: Any, n: int) -> Any:
    return None if n % 3 == 0 else value


def _account(n: int) -> dict[str, Any]:
    return {
        "id": _id(n),
        "number": f"DE{n:020d}",
        "name": _pick(TEXTS, n) or "Main",
        "type": _pick(_values(AccountType), n),
        "currency": _pick(CURRENCIES, n),
        "status": _pick(_values(AccountStatus), n),
        "posted": _pick(AMOUNTS, n),
        "held": _pick(AMOUNTS, n + 1),
        "updated_at": _pick(TIMES, n),
        "opened_at": _pick(TIMES, n + 1),
        "closed_at": _maybe(_pick(TIMES, n + 2), n),
    }


def _transaction(n: int) -> dict[str, Any]:
    return {
        "id": _id(n),
        "account_id": _id(n + 100),
        "amount": _pick(AMOUNTS, n),
        "currency": _pick(CURRENCIES, n + 1),
        "direction": _pick(_values(Direction), n),
        "status": _pick(_values(TransactionStatus), n),
        "kind": _pick(("card", "transfer", "fee"), n),
        "counterparty": _maybe(_pick(TEXTS, n), n),
        "description": _pick(TEXTS, n + 1),
        "merchant": _maybe(_pick(TEXTS, n + 2), n + 1),
        "category": _maybe("groceries", n + 2),
        "external_id": _maybe(f"ext-{n}", n),
        "occurred_at": _pick(TIMES, n),
        "created_at": _pick(TIMES, n + 2),
    }


def _payment(n: int) -> dict[str, Any]:
    return {
        "id": _id(n),
        "kind": _pick(_values(PaymentKind), n),
        "status": _pick(_values(PaymentStatus), n),
        "amount": _pick(AMOUNTS, n + 2),
        "currency": _pick(CURRENCIES, n),
        "from_account_id": _id(n + 200),
        "to_account_id": _maybe(_id(n + 300), n),
        "payment_method_id": _maybe(_id(n + 400), n + 1),
        "description": _pick(TEXTS, n),
        "execute_at": _maybe(_pick(TIMES, n), n + 2),
        "failure_reason": _maybe("insufficient funds", n + 1),
        "created_at": _pick(TIMES, n),
        "updated_at": _pick(TIMES, n + 1),
        "completed_at": _maybe(_pick(TIMES, n + 2), n),
    }


def _rows(rows: list[dict[str, Any]]) -> list[Any]:
    """The same records as attribute-bearing rows, for the pydantic view builders."""
    return [SimpleNamespace(**row) for row in rows]


def _pydantic(view: BaseModel) -> bytes:
    return view.model_dump_json().encode()


@pytest.mark.parametrize("count", [0, 1, 7])
def test_the_accounts_view_is_byte_for_byte_the_pydantic_one(count: int) -> None:
    rows = [_account(n) for n in range(count)]

    fast = read_views.dumps({"items": [read_views.account(r) for r in rows]})

    assert fast == _pydantic(AccountList(items=[view_of(a) for a in _rows(rows)]))


@pytest.mark.parametrize(("count", "limit"), [(0, 50), (12, 50), (13, 12), (51, 50)])
def test_the_transactions_page_is_byte_for_byte_the_pydantic_one(count: int, limit: int) -> None:
    rows = [_transaction(n) for n in range(count)]

    fast = read_views.dumps(read_views.transaction_page(rows, limit))

    assert fast == _pydantic(_page(_rows(rows), limit))
    assert (b'"next_cursor":null' in fast) == (count <= limit)


@pytest.mark.parametrize(("count", "limit"), [(0, 20), (5, 20), (21, 20)])
def test_the_payments_page_is_byte_for_byte_the_pydantic_one(count: int, limit: int) -> None:
    rows = [_payment(n) for n in range(count)]
    page = _rows(rows)[:limit]
    cursor = None
    if count > limit:
        last = page[-1]
        cursor = encode_cursor("p", last.created_at.isoformat(), str(last.id))

    fast = read_views.dumps(read_views.payment_page(rows, limit))

    assert fast == _pydantic(
        PaymentPage(items=[payment_public(p) for p in page], next_cursor=cursor)
    )


@pytest.mark.parametrize("n", range(3))
def test_the_profile_view_is_byte_for_byte_the_pydantic_one(n: int) -> None:
    row = {
        "id": _id(n),
        "email": f"ünïcode{n}@example.com",
        "first_name": _pick(TEXTS, n + 1) or "Ada",
        "last_name": "Lovelace",
        "status": "active",
        "mfa_enabled": n % 2 == 0,
        "created_at": _pick(TIMES, n),
    }

    fast = read_views.dumps(read_views.profile(row))

    assert fast == _pydantic(
        ProfilePublic.model_validate(SimpleNamespace(**row), from_attributes=True)
    )


def test_a_value_outside_the_views_types_is_refused_not_stringified() -> None:
    with pytest.raises(TypeError):
        read_views.dumps({"amount": object()})
