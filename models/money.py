"""ISO 4217 currencies and exact conversions between decimal strings and integer minor units.

Money is always an `int` of minor units plus a currency code; the exponent of the currency says
how many decimal places a major unit has (EUR 2: 12.34 EUR = 1234; JPY 0; KWD 3). Floats are
refused everywhere: they cannot represent 0.10 exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel

# 10^15 minor units: 10 trillion EUR, 1 quadrillion JPY. Far below BIGINT (9.2e18), so a balance
# can absorb ~9,000 maximal postings before PostgreSQL would overflow.
MAX_AMOUNT_MINOR = 10**15


_CODE_RE = re.compile(r"^[A-Z]{3}$")


_AMOUNT_RE = re.compile(r"^[+-]?(\d+)(?:\.(\d+))?$")


class CurrencyError(ValueError):
    """An unknown or malformed ISO 4217 currency code."""


class AmountError(ValueError):
    """An amount that is not a valid number of minor units for its currency."""


@dataclass(frozen=True, slots=True)
class Currency:
    """One ISO 4217 currency: code, minor-unit exponent and English name."""

    code: str
    exponent: int
    name: str

    @property
    def factor(self) -> int:
        """Minor units per major unit (100 for EUR, 1 for JPY, 1000 for KWD)."""
        return int(10**self.exponent)


CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("USD", 2, "US Dollar"),
        Currency("EUR", 2, "Euro"),
        Currency("GBP", 2, "Pound Sterling"),
        Currency("CHF", 2, "Swiss Franc"),
        Currency("JPY", 0, "Yen"),
        Currency("KWD", 3, "Kuwaiti Dinar"),
        Currency("BHD", 3, "Bahraini Dinar"),
        Currency("OMR", 3, "Rial Omani"),
        Currency("JOD", 3, "Jordanian Dinar"),
        Currency("TND", 3, "Tunisian Dinar"),
        Currency("KRW", 0, "Won"),
        Currency("ISK", 0, "Iceland Krona"),
        Currency("SEK", 2, "Swedish Krona"),
        Currency("NOK", 2, "Norwegian Krone"),
        Currency("DKK", 2, "Danish Krone"),
        Currency("PLN", 2, "Zloty"),
        Currency("CZK", 2, "Czech Koruna"),
        Currency("HUF", 2, "Forint"),
        Currency("RON", 2, "Romanian Leu"),
        Currency("TRY", 2, "Turkish Lira"),
        Currency("CAD", 2, "Canadian Dollar"),
        Currency("AUD", 2, "Australian Dollar"),
        Currency("NZD", 2, "New Zealand Dollar"),
        Currency("SGD", 2, "Singapore Dollar"),
        Currency("HKD", 2, "Hong Kong Dollar"),
        Currency("CNY", 2, "Yuan Renminbi"),
        Currency("INR", 2, "Indian Rupee"),
        Currency("BRL", 2, "Brazilian Real"),
        Currency("MXN", 2, "Mexican Peso"),
        Currency("ZAR", 2, "Rand"),
        Currency("AED", 2, "UAE Dirham"),
        Currency("ILS", 2, "New Israeli Sheqel"),
    )
}


def is_currency_code(code: object) -> bool:
    """True if `code` is a supported ISO 4217 code (upper case, exactly as stored)."""
    return isinstance(code, str) and code in CURRENCIES


def get_currency(code: str) -> Currency:
    """The supported currency for an upper-case code; CurrencyError otherwise."""
    if isinstance(code, str) and (known := CURRENCIES.get(code)) is not None:
        return known  # the common case first: every view formats amounts through here
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise CurrencyError(f"malformed currency code {code!r}: expected three upper-case letters")
    currency = CURRENCIES.get(code)
    if currency is None:
        raise CurrencyError(f"unsupported currency {code!r}")
    return currency


def normalize_currency_code(code: str) -> str:
    """Accept ' eur ' from user input and return 'EUR' (CurrencyError if not supported)."""
    if not isinstance(code, str):
        raise CurrencyError(f"malformed currency code {code!r}")
    return get_currency(code.strip().upper()).code


def check_minor_amount(amount: int, *, positive: bool = True) -> int:
    """Validate an integer minor-unit amount: an int (never bool/float), |amount| within the cap,
    and strictly positive unless `positive` is False (then only non-zero)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise AmountError(f"amount must be an integer number of minor units, got {amount!r}")
    if amount == 0:
        raise AmountError("amount must not be zero")
    if positive and amount < 0:
        raise AmountError("amount must be positive")
    if abs(amount) > MAX_AMOUNT_MINOR:
        raise AmountError(f"amount exceeds the maximum of {MAX_AMOUNT_MINOR} minor units")
    return amount


def parse_amount(value: str | Decimal | int, currency: str, *, positive: bool = True) -> int:
    """Parse a decimal amount in major units ("12.34") into minor units (1234 for EUR).

    Refuses floats, exponents, more decimals than the currency has ("1.234" EUR, "1.5" JPY),
    zero, negatives when `positive`, and amounts above MAX_AMOUNT_MINOR.
    """
    cur = get_currency(currency)
    if isinstance(value, bool | float):
        raise AmountError("amounts must be given as decimal strings, never floats")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise AmountError(f"invalid amount {value!r}")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise AmountError(f"invalid amount {value!r}")
    match = _AMOUNT_RE.match(text)
    if match is None or len(text) > 40:
        raise AmountError(f"invalid amount {value!r}: expected a plain decimal like 12.34")
    try:
        decimal = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise AmountError(f"invalid amount {value!r}") from exc
    fraction = (match.group(2) or "").rstrip("0")
    if len(fraction) > cur.exponent:
        raise AmountError(
            f"{cur.code} has {cur.exponent} decimal places; {text} has fractional minor units"
        )
    minor = int(decimal.scaleb(cur.exponent))
    if minor == 0:
        raise AmountError("amount must not be zero")
    return check_minor_amount(minor, positive=positive)


def format_amount(minor: int, currency: str) -> str:
    """Render minor units as a plain decimal string with exactly the currency's decimals."""
    cur = get_currency(currency)
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise AmountError(f"minor units must be an int, got {minor!r}")
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), cur.factor)
    if cur.exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{cur.exponent}d}"


class Money(BaseModel):
    """An amount: `amount` is a decimal string in major units, `amount_minor` is exact."""

    amount: str
    amount_minor: int
    currency: str

    @classmethod
    def of(cls, minor: int, currency: str) -> Money:
        """Build from integer minor units."""
        return cls(amount=format_amount(minor, currency), amount_minor=minor, currency=currency)
