"""The list and search filters of the transactions API.

Semantics (documented in the README):
- `from`/`to` take a date (`2024-05-01`) or a datetime (`2024-05-01T12:00:00Z`; naive = UTC).
  Both bounds are inclusive: a date `to` covers that whole (UTC) day.
- `min_amount`/`max_amount` are decimal strings compared (inclusive) with the transaction's
  positive amount in minor units. They are interpreted in `currency` or, without it, in the
  currency of `account_id`; with neither they are refused, since 10 JPY and 10 KWD are not
  comparable. Giving `currency` also restricts the results to that currency.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.ledger.errors import CurrencyMismatch
from api.money import category as category_of
from api.money import currency_code, minor_units
from api.ownership import owned_account
from core import errors
from models.ledger.tables import (
    Direction,
    Transaction,
    TransactionStatus,
)
from models.text import SINGLE_LINE

Bound = Annotated[str | None, Query(max_length=40), SINGLE_LINE]


FromBound = Annotated[str | None, Query(alias="from", max_length=40), SINGLE_LINE]


AmountParam = Annotated[str | None, Query(max_length=40), SINGLE_LINE]


AccountFilter = Annotated[uuid.UUID | None, Query()]


class InvalidFilter(errors.AppError):
    """A query parameter that cannot be interpreted."""

    status, type, title = 422, "invalid-filter", "Invalid filter"


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# A "+02:00" offset whose "+" arrived as a space because the client did not URL-encode it.
_SPACED_OFFSET_RE = re.compile(r" (\d{2}:?\d{2})$")


def _bound(value: str | None, name: str, *, end: bool) -> datetime | None:
    """A date or datetime bound as an instant; a date `to` means the end of that day.

    Returns the inclusive start for `from` and the exclusive end for `to`.
    """
    if value is None or not value.strip():
        return None
    text_value = value.strip()
    try:
        if _DATE_RE.match(text_value):
            day = date.fromisoformat(text_value)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(_SPACED_OFFSET_RE.sub(r"+\1", text_value))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # In UTC, as PostgreSQL compares: an instant without a UTC form overflows here, not
        # in the driver (a 500); so does the day after 9999-12-31.
        parsed = parsed.astimezone(UTC)
        return parsed + timedelta(microseconds=1) if end else parsed
    except OverflowError as exc:
        raise InvalidFilter(f"`{name}` is out of range", parameter=name) from exc
    except ValueError as exc:
        raise InvalidFilter(
            f"`{name}` must be a date (2024-05-01) or an ISO 8601 datetime", parameter=name
        ) from exc


@dataclass(frozen=True)
class Range:
    """A half-open time range [start, end); either side may be open."""

    start: datetime | None
    end: datetime | None


def _range(from_: str | None, to: str | None) -> Range:
    start, end = _bound(from_, "from", end=False), _bound(to, "to", end=True)
    if start is not None and end is not None and start >= end:
        raise InvalidFilter("`from` must not be after `to`")
    return Range(start, end)


@dataclass
class ListParams:
    """The list/search filters as received (validated against the database in `_conditions`)."""

    account_id: uuid.UUID | None
    from_: str | None
    to: str | None
    min_amount: str | None
    max_amount: str | None
    currency: str | None
    direction: Direction | None
    category: str | None
    status: TransactionStatus | None


async def list_params(
    account_id: AccountFilter = None,
    from_: FromBound = None,
    to: Bound = None,
    min_amount: AmountParam = None,
    max_amount: AmountParam = None,
    currency: Annotated[str | None, Query(max_length=3), SINGLE_LINE] = None,
    direction: Annotated[Direction | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=32), SINGLE_LINE] = None,
    status: Annotated[TransactionStatus | None, Query()] = None,
) -> ListParams:
    """Collect the list filters from the query string."""
    return ListParams(
        account_id, from_, to, min_amount, max_amount, currency, direction, category, status
    )


ListParamsDep = Annotated[ListParams, Depends(list_params)]


def _in_range(window: Range) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if window.start is not None:
        conditions.append(col(Transaction.occurred_at) >= window.start)
    if window.end is not None:
        conditions.append(col(Transaction.occurred_at) < window.end)
    return conditions


async def _conditions(
    session: AsyncSession, user_id: uuid.UUID, params: ListParams
) -> list[ColumnElement[bool]]:
    """WHERE conditions for the caller's transactions matching the filters (404 for a foreign
    account filter, 422 for filters that cannot be interpreted)."""
    conditions: list[ColumnElement[bool]] = [col(Transaction.user_id) == user_id]
    account_currency: str | None = None
    if params.account_id is not None:
        account = await owned_account(session, user_id, params.account_id)
        account_currency = account.currency
        conditions.append(col(Transaction.account_id) == account.id)
    currency = currency_code(params.currency) if params.currency else None
    if currency is not None:
        if account_currency is not None and account_currency != currency:
            raise CurrencyMismatch(
                f"the account holds {account_currency}, not {currency}",
                account_currency=account_currency,
                currency=currency,
            )
        conditions.append(col(Transaction.currency) == currency)
    conditions += _in_range(_range(params.from_, params.to))
    if params.min_amount is not None or params.max_amount is not None:
        amount_currency = currency or account_currency
        if amount_currency is None:
            raise InvalidFilter(
                "min_amount/max_amount need `currency` or `account_id` to be interpreted"
            )
        low = (
            minor_units(params.min_amount, amount_currency, "min_amount")
            if params.min_amount
            else None
        )
        high = (
            minor_units(params.max_amount, amount_currency, "max_amount")
            if params.max_amount
            else None
        )
        if low is not None and high is not None and low > high:
            raise InvalidFilter("`min_amount` must not be greater than `max_amount`")
        if low is not None:
            conditions.append(col(Transaction.amount) >= low)
        if high is not None:
            conditions.append(col(Transaction.amount) <= high)
    if params.direction is not None:
        conditions.append(col(Transaction.direction) == params.direction)
    if params.category is not None:
        conditions.append(col(Transaction.category) == category_of(params.category))
    if params.status is not None:
        conditions.append(col(Transaction.status) == params.status)
    return conditions
