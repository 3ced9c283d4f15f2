"""Reading money from a request: decimal strings in a currency, categories and timestamps, as
problem+json errors (never floats, never a 500)."""

from __future__ import annotations

from datetime import datetime, timedelta

from activities.categorize import CATEGORIES
from activities.ledger.errors import InvalidAmount, InvalidCategory, InvalidRequest, UnknownCurrency
from models.base import utcnow
from models.money import AmountError, CurrencyError, normalize_currency_code, parse_amount

# External sources may run slightly ahead of our clock; anything later is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def currency_code(code: str) -> str:
    """A known ISO 4217 code, upper-cased; 422 `unknown-currency` otherwise."""
    try:
        return normalize_currency_code(code)
    except CurrencyError as exc:
        raise UnknownCurrency(str(exc), currency=code[:8]) from exc


def minor_units(value: str, currency: str, name: str = "amount") -> int:
    """A positive decimal amount in the currency's minor units; 422 `invalid-amount` otherwise."""
    try:
        return parse_amount(value, currency)
    except CurrencyError as exc:
        raise UnknownCurrency(str(exc), currency=currency[:8]) from exc
    except AmountError as exc:
        raise InvalidAmount(f"`{name}`: {exc}", parameter=name) from exc


def category(value: str) -> str:
    """One of the ledger's categories; 422 `invalid-category` otherwise."""
    name = value.strip().lower()
    if name not in CATEGORIES:
        raise InvalidCategory(f"unknown category {value[:40]!r}", allowed=sorted(CATEGORIES))
    return name


def entry_money(amount: str, code: str, category_name: str | None) -> tuple[int, str, str | None]:
    """An entry's amount in minor units, its currency and category (422 problems if invalid)."""
    currency = currency_code(code)
    chosen = category(category_name) if category_name is not None else None
    return minor_units(amount, currency), currency, chosen


def not_in_future(at: datetime | None) -> None:
    """Refuse a timestamp ahead of our clock by more than the allowed skew."""
    if at is not None and at > utcnow() + MAX_CLOCK_SKEW:
        raise InvalidRequest("occurred_at is in the future")
