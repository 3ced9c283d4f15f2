"""Request validation and idempotency helpers shared by the ledger operations."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, Final, TypeVar

from pydantic import BaseModel
from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncConnection

from activities.categorize import CATEGORIES
from activities.ledger.errors import (
    IDEMPOTENCY_KEY_REUSED,
    INVALID_AMOUNT,
    INVALID_CATEGORY,
    INVALID_REQUEST,
    UNKNOWN_CURRENCY,
    LedgerError,
)
from models.money import AmountError, CurrencyError, check_minor_amount
from models.money import get_currency as _get_currency

# A balance may never leave +-2^62: far from BIGINT overflow even with a maximal posting on top.
MAX_BALANCE: Final = 2**62


MAX_LEGS: Final = 64


MAX_HOLD_TTL_SECONDS: Final = 90 * 24 * 3600


_KIND_RE = re.compile(r"^[a-z][a-z_]{0,31}$")


_EXTERNAL_KINDS = frozenset({"card", "cash"})


def _currency(code: str) -> str:
    try:
        return _get_currency(code).code
    except CurrencyError as exc:
        raise LedgerError(UNKNOWN_CURRENCY, str(exc), currency=str(code)[:8]) from exc


def _amount(amount: int, *, positive: bool = True) -> int:
    try:
        return check_minor_amount(amount, positive=positive)
    except AmountError as exc:
        raise LedgerError(INVALID_AMOUNT, str(exc)) from exc


def _text(value: str | None, name: str, max_len: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise LedgerError(INVALID_REQUEST, f"{name} is required")
        return None
    value = value.strip()
    if required and not value:
        raise LedgerError(INVALID_REQUEST, f"{name} must not be empty")
    if len(value) > max_len:
        raise LedgerError(INVALID_REQUEST, f"{name} is longer than {max_len} characters")
    return value or None


def _key(value: str) -> str:
    key = _text(value, "idempotency_key", 200, required=True)
    assert key is not None
    return key


def _category(value: str | None) -> str | None:
    if value is not None and value not in CATEGORIES:
        raise LedgerError(
            INVALID_CATEGORY, f"unknown category {value[:40]!r}", allowed=sorted(CATEGORIES)
        )
    return value


def _fingerprint(operation: str, request: BaseModel, *, exclude: set[str] | None = None) -> str:
    """sha256 of the operation name and the request's canonical JSON (minus the key itself)."""
    body = request.model_dump(mode="json", exclude=exclude)
    canonical = json.dumps([operation, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reused(key: str) -> LedgerError:
    return LedgerError(
        IDEMPOTENCY_KEY_REUSED,
        "this idempotency key was already used for a different request",
        idempotency_key=key,
    )


ResultT = TypeVar("ResultT", bound=BaseModel)


async def _first_result(
    conn: AsyncConnection,
    find: TextClause,
    key: str,
    request_hash: str,
    build: Callable[[Any], ResultT],
) -> ResultT | None:
    """The first result stored under an idempotency key (None if the key is new); the same key
    with a different request is refused."""
    row = (await conn.execute(find, {"key": key})).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise _reused(key)
    return build(row)
