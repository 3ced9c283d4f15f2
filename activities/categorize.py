"""Rule-based categorization of new transactions by merchant name and description keywords.

Deterministic and cheap so it can run inside the posting transaction; the AI categorizer that
comes later only refines it. Users can always override a category (recategorize).
"""

from __future__ import annotations

import re
from typing import Final

CATEGORIES: Final[frozenset[str]] = frozenset(
    {
        "groceries",
        "dining",
        "transport",
        "travel",
        "utilities",
        "entertainment",
        "shopping",
        "health",
        "salary",
        "income",
        "transfer",
        "cash",
        "fees",
        "other",
    }
)

# Order matters: the first rule whose keyword appears wins ("uber eats" is dining, not transport).
_RULES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("salary", ("salary", "payroll", "wages", "paycheck")),
    (
        "dining",
        (
            "uber eats",
            "deliveroo",
            "doordash",
            "just eat",
            "starbucks",
            "costa",
            "mcdonald",
            "burger",
            "pizza",
            "restaurant",
            "cafe",
            "coffee",
            "bistro",
            "sushi",
            "bar",
            "pub",
            "kfc",
            "subway",
        ),
    ),
    (
        "groceries",
        (
            "tesco",
            "sainsbury",
            "lidl",
            "aldi",
            "carrefour",
            "rewe",
            "edeka",
            "whole foods",
            "kroger",
            "safeway",
            "waitrose",
            "asda",
            "migros",
            "coop",
            "supermarket",
            "grocery",
            "groceries",
            "market",
        ),
    ),
    (
        "transport",
        (
            "uber",
            "lyft",
            "bolt",
            "taxi",
            "metro",
            "tfl",
            "transit",
            "railway",
            "rail",
            "train",
            "bus",
            "parking",
            "fuel",
            "shell",
            "bp",
            "esso",
            "petrol",
        ),
    ),
    (
        "travel",
        ("airbnb", "booking.com", "hotel", "airline", "ryanair", "easyjet", "lufthansa", "expedia"),
    ),
    (
        "utilities",
        (
            "electric",
            "electricity",
            "energy",
            "water",
            "gas bill",
            "internet",
            "broadband",
            "vodafone",
            "verizon",
            "at&t",
            "t-mobile",
            "telecom",
            "utility",
            "rent",
        ),
    ),
    (
        "entertainment",
        (
            "netflix",
            "spotify",
            "disney",
            "hbo",
            "steam",
            "playstation",
            "xbox",
            "cinema",
            "theatre",
            "theater",
            "concert",
            "ticketmaster",
            "apple music",
            "youtube",
        ),
    ),
    ("health", ("pharmacy", "apotheke", "doctor", "dental", "hospital", "clinic", "gym")),
    (
        "shopping",
        (
            "amazon",
            "ebay",
            "zara",
            "h&m",
            "ikea",
            "apple store",
            "best buy",
            "zalando",
            "decathlon",
            "store",
            "shop",
        ),
    ),
    ("cash", ("atm", "cash withdrawal", "cash deposit")),
    ("fees", ("fee", "commission", "interest charge")),
)


def _pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """Whole words (or phrases), optionally plural, so "rent" never matches "current"."""
    words = "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{words})(?:'?s)?(?![a-z0-9])")


_COMPILED: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (category, _pattern(keywords)) for category, keywords in _RULES
)


def categorize(
    merchant: str | None,
    description: str | None,
    *,
    kind: str | None = None,
    direction: str | None = None,
) -> str:
    """Best-guess category of a new transaction from its merchant, description and kind."""
    if kind in ("transfer", "sweep"):
        return "transfer"
    if kind == "cash":
        return "cash"
    text = f"{merchant or ''} {description or ''}".lower()
    for category, pattern in _COMPILED:
        if pattern.search(text):
            return category
    if kind == "funding" or direction == "credit":
        return "income"
    return "other"
