"""The guard against made-up figures: every number a model's answer states must appear in
what the tools returned this turn (or in the customer's own question)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def _norm(token: str) -> str | None:
    try:
        value = Decimal(token.replace(",", ""))
    except InvalidOperation:
        return None
    return format(value.normalize(), "f")


def numbers_in(text: str) -> set[str]:
    """The numbers a text states (ids aside), normalized ('12.50' == '12.5')."""
    found = set()
    for token in _NUMBER.findall(_UUID.sub(" ", text)):
        if (n := _norm(token)) is not None:
            found.add(n)
    return found


def numbers_of(value: Any) -> set[str]:
    """Every number inside a tool result (strings included, so '2026-03-01' gives 2026, 3, 1)."""
    if isinstance(value, dict):
        return set().union(*(numbers_of(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(numbers_of(v) for v in value)) if value else set()
    if isinstance(value, bool) or value is None:
        return set()
    return numbers_in(str(value))


def unsupported(answer: str, results: list[Any], question: str) -> set[str]:
    """Numbers in the answer that no tool result nor the question contains."""
    allowed = numbers_of(results) | numbers_in(question)
    return numbers_in(answer) - allowed


def cited_ids(answer: str, results: list[Any]) -> list[str]:
    """Transaction/payment ids from the results that the answer mentions."""
    known = {m.lower() for m in _UUID.findall(str(results))}
    return sorted({m.lower() for m in _UUID.findall(answer)} & known)
