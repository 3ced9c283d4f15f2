"""Deterministic reading of a customer's question: which read-only tool answers it, with
which arguments, and whether it asks to move money. Used by the local engine, and to decide
proposals from the customer's own words only (never from a model or from transaction data)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from activities.categorize import CATEGORIES

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        )
    )
}
_SYNONYMS = {
    "restaurant": "dining",
    "restaurants": "dining",
    "eating out": "dining",
    "food delivery": "dining",
    "coffee": "dining",
    "grocery": "groceries",
    "supermarket": "groceries",
    "supermarkets": "groceries",
    "taxi": "transport",
    "taxis": "transport",
    "subscriptions": "entertainment",
    "bills": "utilities",
    "shops": "shopping",
    "fees": "fees",
}


@dataclass(frozen=True)
class Intent:
    """A read-only tool and its arguments."""

    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class TransferIntent:
    """'move 200 EUR to savings': an amount (decimal string), currency and destination words."""

    amount: str
    currency: str | None
    to_words: str
    from_words: str | None


def category_in(text: str) -> str | None:
    """A ledger category named in the text (or a common synonym)."""
    lowered = text.lower()
    for phrase, category in _SYNONYMS.items():
        if re.search(rf"\b{re.escape(phrase)}\b", lowered):
            return category
    for category in sorted(CATEGORIES):
        if re.search(rf"\b{re.escape(category)}\b", lowered):
            return category
    return None


def _month_start(month: int, today: date) -> date:
    year = today.year if month <= today.month else today.year - 1
    return date(year, month, 1)


def period_in(text: str, today: date) -> tuple[date | None, date | None]:
    """(start inclusive, end exclusive) of a period named in the text, or (None, None)."""
    lowered = text.lower()
    tomorrow = today + timedelta(days=1)
    if m := re.search(r"\bsince (" + "|".join(_MONTHS) + r")\b", lowered):
        return _month_start(_MONTHS[m.group(1)], today), tomorrow
    if m := re.search(r"\bin (" + "|".join(_MONTHS) + r")\b", lowered):
        start = _month_start(_MONTHS[m.group(1)], today)
        nxt = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        return start, nxt
    if m := re.search(r"\blast (\d{1,3}) days\b", lowered):
        return today - timedelta(days=int(m.group(1))), tomorrow
    if "this month" in lowered:
        return today.replace(day=1), tomorrow
    if "last month" in lowered:
        first = today.replace(day=1)
        prev = (first - timedelta(days=1)).replace(day=1)
        return prev, first
    if "this year" in lowered:
        return date(today.year, 1, 1), tomorrow
    if "last week" in lowered:
        return today - timedelta(days=7), tomorrow
    return None, None


def _dated(arguments: dict[str, Any], start: date | None, end: date | None) -> dict[str, Any]:
    if start is not None:
        arguments["start"] = start.isoformat()
    if end is not None:
        arguments["end"] = end.isoformat()
    return arguments


def question_intent(text: str, today: date) -> Intent | None:
    """The read-only tool that answers the question, or None (no figures can be given)."""
    lowered = text.lower()
    start, end = period_in(text, today)
    category = category_in(text)
    if re.search(r"\b(balance|balances|how much (money )?do i have|available)\b", lowered):
        return Intent("get_balances", {})
    if re.search(r"\b(subscriptions?|recurring|standing orders?|direct debits?)\b", lowered):
        return Intent("recurring_payments", {})
    if re.search(r"\b(scheduled|upcoming|planned) (transfers?|payments?)\b", lowered):
        return Intent("scheduled_transfers", {})
    if re.search(r"\b(spend|spent|spending|cost|costs|expenses?)\b", lowered):
        args: dict[str, Any] = {"category": category} if category else {}
        return Intent("spending_by_category", _dated(args, start, end))
    if re.search(r"\b(transactions?|payments?|purchases?|bought|paid|show|find|list)\b", lowered):
        args = {"category": category} if category else {}
        if m := re.search(r"\b(?:at|from|to) ([a-z0-9][\w&' .-]{1,40})", lowered):
            args["query"] = m.group(1).strip(" .?!")
        return Intent("search_transactions", _dated(args, start, end))
    return None


_TRANSFER = re.compile(
    r"\b(?:move|transfer|send|put)\s+(?P<amount>\d{1,9}(?:[.,]\d{1,3})?)\s*"
    r"(?P<currency>[a-z]{3})?\b(?:\s+from\s+(?:my\s+)?(?P<src>[\w ]{2,40}?))?"
    r"\s+(?:to|into)\s+(?:my\s+)?(?P<dest>[\w ]{2,40})",
    re.IGNORECASE,
)


def transfer_intent(text: str) -> TransferIntent | None:
    """A money-moving request in the customer's own words ('move 200 EUR to savings')."""
    m = _TRANSFER.search(text)
    if m is None:
        return None
    raw = m.group("amount").replace(",", ".")
    try:
        Decimal(raw)
    except InvalidOperation:
        return None
    currency = m.group("currency")
    return TransferIntent(
        amount=raw,
        currency=currency.upper() if currency else None,
        to_words=m.group("dest").strip().lower(),
        from_words=m.group("src").strip().lower() if m.group("src") else None,
    )
