"""IBAN normalisation and validation (ISO 13616): country length table and the mod-97 check."""

from __future__ import annotations

import re
from typing import Final

# IBAN length per country (SWIFT IBAN registry): every SEPA country, plus other common ones.
IBAN_LENGTHS: Final[dict[str, int]] = {
    # SEPA (EU/EEA, CH, GB, microstates)
    "AD": 24,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "GI": 23,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "VA": 22,
    # elsewhere
    "AE": 23,
    "AL": 28,
    "BA": 20,
    "FO": 18,
    "GE": 22,
    "GL": 18,
    "IL": 23,
    "ME": 22,
    "MK": 19,
    "RS": 22,
    "SA": 24,
    "TR": 26,
    "UA": 29,
    "XK": 20,
}

_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]+$")
_SEPARATORS = re.compile(r"[\s\-]+")


class IbanError(ValueError):
    """The text is not a valid IBAN; the message says why (safe to show to the customer)."""


def normalize_iban(raw: str) -> str:
    """Upper-case and strip spaces/hyphens (the printed form groups by four)."""
    return _SEPARATORS.sub("", raw).upper()


def iban_checksum_ok(iban: str) -> bool:
    """The ISO 7064 mod-97-10 check: move the first four chars to the end, letters -> 10..35."""
    rearranged = iban[4:] + iban[:4]
    remainder = 0
    for ch in rearranged:
        value = int(ch, 36)  # '0'..'9' -> 0..9, 'A'..'Z' -> 10..35
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1


def validate_iban(raw: str) -> str:
    """Return the normalised IBAN, or raise IbanError (shape, country, length, checksum)."""
    iban = normalize_iban(raw)
    if not iban:
        raise IbanError("the IBAN is empty")
    if not _SHAPE.match(iban):
        raise IbanError("an IBAN is a country code, two check digits and letters/digits")
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is None:
        raise IbanError(f"IBANs of country {iban[:2]} are not supported")
    if len(iban) != expected:
        raise IbanError(f"a {iban[:2]} IBAN has {expected} characters, not {len(iban)}")
    if not iban_checksum_ok(iban):
        raise IbanError("the IBAN check digits are wrong (mistyped?)")
    return iban


def format_iban(iban: str) -> str:
    """The printed form: groups of four characters."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
