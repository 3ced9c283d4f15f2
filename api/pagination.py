"""Keyset pagination: one opaque cursor codec for every list route.

A cursor is URL-safe base64 of a JSON list `[kind, *fields]`; `kind` names the list (and, where
it matters, the query) so a cursor of one list is refused by another. Anything this API did not
issue is a 422 `invalid-cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query

from core.errors import AppError
from models.text import SINGLE_LINE

CursorParam = Annotated[
    str | None, Query(max_length=300, description="`next_cursor` of a page"), SINGLE_LINE
]


class InvalidCursor(AppError):
    """A cursor that this API did not issue (or issued for another query)."""

    status, type, title = 422, "invalid-cursor", "Invalid cursor"


def encode_cursor(kind: str, *fields: Any) -> str:
    """An opaque cursor for the row after which the next page starts."""
    raw = json.dumps([kind, *fields], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, arity: int) -> list[Any]:
    """The cursor's fields after `kind`; InvalidCursor for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this API issued") from exc
    if not (isinstance(payload, list) and len(payload) == arity + 1 and payload[0] == kind):
        raise InvalidCursor("the cursor is not one this API issued (or belongs to another query)")
    return payload[1:]


def position(at: object, row_id: object) -> tuple[datetime, uuid.UUID]:
    """A (timestamp, id) keyset position read back from a cursor."""
    try:
        when = datetime.fromisoformat(str(at))
        ident = uuid.UUID(str(row_id))
    except ValueError as exc:
        raise InvalidCursor("the cursor is not one this API issued") from exc
    if when.tzinfo is None:
        raise InvalidCursor("the cursor is not one this API issued")
    return when, ident
