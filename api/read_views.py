"""The hot read routes' answers as JSON bytes built straight from database records.

Building a pydantic view per row (`TransactionPublic.of`, `Money.of`) and having FastAPI
validate and serialize it again was most of a transactions page's CPU. Here each view is a plain
dict in the exact shape and key order of its pydantic model, serialized once by orjson;
`tests/test_read_views.py` proves the bytes equal the pydantic serialization on varied rows, and
the routes keep their models as `response_model`, so the OpenAPI document is unchanged.
Records come from `api.fast_reads` (asyncpg: UTC-aware datetimes, UUIDs, plain strings).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import Response

from api.pagination import encode_cursor
from models.money import format_amount

Row = Mapping[str, Any]
# `Z` for UTC, as pydantic writes it; microseconds only when non-zero, as pydantic does.
_OPTIONS = orjson.OPT_UTC_Z


def _other(value: object) -> str:
    """asyncpg's UUID is a subclass of `uuid.UUID`, which orjson only takes exactly."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not part of a read view")


def dumps(content: dict[str, Any]) -> bytes:
    """`content` as JSON, as pydantic would write the view it mirrors."""
    return orjson.dumps(content, default=_other, option=_OPTIONS)


def json_response(content: dict[str, Any]) -> Response:
    """An `application/json` answer of `content`, serialized by orjson."""
    return Response(dumps(content), media_type="application/json")


def money(minor: int, currency: str) -> dict[str, Any]:
    """`models.money.Money.of(minor, currency)` as a dict."""
    return {"amount": format_amount(minor, currency), "amount_minor": minor, "currency": currency}


def account(row: Row) -> dict[str, Any]:
    """`AccountPublic` of a `ledger_accounts` record (`api.routes.accounts.view_of`)."""
    currency, posted, held = row["currency"], row["posted"], row["held"]
    return {
        "id": row["id"],
        "number": row["number"],
        "name": row["name"],
        "type": row["type"],
        "currency": currency,
        "status": row["status"],
        "balance": {
            "account_id": row["id"],
            "currency": currency,
            "posted": money(posted, currency),
            "held": money(held, currency),
            "available": money(posted - held, currency),
            "as_of": row["updated_at"],
        },
        "opened_at": row["opened_at"],
        "closed_at": row["closed_at"],
    }


def transaction(row: Row) -> dict[str, Any]:
    """`TransactionPublic.of` a `transactions` record."""
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "amount": money(row["amount"], row["currency"]),
        "direction": row["direction"],
        "status": row["status"],
        "kind": row["kind"],
        "counterparty": row["counterparty"],
        "description": row["description"],
        "merchant": row["merchant"],
        "category": row["category"],
        "external_id": row["external_id"],
        "occurred_at": row["occurred_at"],
        "created_at": row["created_at"],
    }


def transaction_page(rows: Sequence[Row], limit: int) -> dict[str, Any]:
    """`TransactionPage` of up to `limit` records out of `limit + 1` read (the cursor of
    `api.routes.transactions._page` when more follow)."""
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        last = page[-1]
        cursor = encode_cursor("l", last["occurred_at"].isoformat(), str(last["id"]))
    return {"items": [transaction(r) for r in page], "next_cursor": cursor}


def payment(row: Row) -> dict[str, Any]:
    """`PaymentPublic` of a `payments` record (`api.payments.flow.payment_public`)."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "amount": money(row["amount"], row["currency"]),
        "from_account_id": row["from_account_id"],
        "to_account_id": row["to_account_id"],
        "payment_method_id": row["payment_method_id"],
        "description": row["description"],
        "execute_at": row["execute_at"],
        "failure_reason": row["failure_reason"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "completed_at": row["completed_at"],
        "status_url": f"/api/payments/{row['id']}/status",
    }


def payment_page(rows: Sequence[Row], limit: int) -> dict[str, Any]:
    """`PaymentPage` of up to `limit` records out of `limit + 1` read."""
    page = rows[:limit]
    cursor = None
    if len(rows) > limit and page:
        last = page[-1]
        cursor = encode_cursor("p", last["created_at"].isoformat(), str(last["id"]))
    return {"items": [payment(r) for r in page], "next_cursor": cursor}


def profile(row: Row) -> dict[str, Any]:
    """`ProfilePublic` of a `users` record."""
    return {
        "id": row["id"],
        "email": row["email"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "status": row["status"],
        "mfa_enabled": row["mfa_enabled"],
        "created_at": row["created_at"],
    }
