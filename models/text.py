"""One input policy for every text the API accepts: request bodies, query strings, signed feeds.

- Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) are refused. Notes
  (`NoteText`: a manual entry's or a card event's description) may hold tab and line feed;
  CR LF and a lone CR become LF there. No other field allows any control character.
- Lone surrogates (category Cs) are refused: PostgreSQL's UTF-8 cannot store them.
- Bidirectional embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069) are
  refused: they make a name or a reference display as something it is not ("Trojan Source").
- Text is normalised to NFC, so a name typed with combining accents and one typed precomposed
  are one string (beneficiary and link holder names are matched, search terms compared).
  Email addresses are normalised harder, NFKC + casefold (`email_identity`): the address is an
  identity, and full-width or case variants must not make a second account.
- `utf8_max(n)` checks a length in UTF-8 bytes, where the consumer counts bytes (RFC 5321 caps
  an address at 254 octets, not characters).

A refusal is a pydantic error, so a request is a 422 `validation-error` (a signed feed: its
`malformed-*` problem) before anything reaches PostgreSQL or a workflow. Secrets that are only
hashed or compared (passwords) are not text and keep every character: see `docs/decisions.md`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Cc (C0, DEL, C1), surrogates and the bidi controls; notes additionally allow \t and \n.
_REFUSED = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff{_BIDI_CONTROLS}]")
_REFUSED_IN_NOTES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{_BIDI_CONTROLS}]")


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def refuse_hostile(value: str, *, multiline: bool = False) -> str:
    """The text normalised to NFC; ValueError when it holds a refused character."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    found = (_REFUSED_IN_NOTES if multiline else _REFUSED).search(value)
    if found is not None:
        allowed = " (tab and line feed are allowed)" if multiline else ""
        raise ValueError(
            f"control or bidi-override characters are not allowed, found "
            f"{_describe(found.group())} at position {found.start()}{allowed}"
        )
    return unicodedata.normalize("NFC", value)


def email_identity(value: str) -> str:
    """The identity form of an email address: policy-checked, NFKC and casefolded."""
    return unicodedata.normalize("NFKC", refuse_hostile(value)).casefold()


def _policy(multiline: bool) -> Any:
    def check(value: object) -> object:
        if not isinstance(value, str):
            return value  # the str schema refuses it with its own message
        try:
            return refuse_hostile(value, multiline=multiline)
        except ValueError as exc:
            raise PydanticCustomError("text_refused_character", str(exc)) from None

    return BeforeValidator(check)


def _identity(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return email_identity(value)
    except ValueError as exc:
        raise PydanticCustomError("text_refused_character", str(exc)) from None


def utf8_max(limit: int) -> Any:
    """A validator: at most `limit` bytes once encoded as UTF-8."""

    def check(value: str) -> str:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise PydanticCustomError(
                "text_too_many_bytes",
                "must be at most {limit} bytes in UTF-8 (this is {size})",
                {"limit": limit, "size": size},
            )
        return value

    return AfterValidator(check)


SINGLE_LINE: Any = _policy(multiline=False)
"""The policy for a single-line field (every text field but notes)."""

NOTE: Any = _policy(multiline=True)
"""The policy for a note: tab and line feed allowed."""

EMAIL_IDENTITY: Any = BeforeValidator(_identity)
"""The policy for an email address: NFKC + casefold before the address is validated."""

Text = Annotated[str, SINGLE_LINE]
"""Any single-line text (add length constraints with `StringConstraints` or `Field`)."""

NoteText = Annotated[str, NOTE]
"""Text that may span lines (tab and line feed allowed)."""


def scrub(value: str, limit: int) -> str:
    """For text we only record (audit details, logs), never act on: drop refused characters."""
    return _REFUSED.sub("", value)[:limit]
