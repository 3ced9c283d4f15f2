"""The Idempotency-Key header, declared once: validated and stored as a digest.

Money-moving and creating POSTs take it; a retry with the same key and body gets the first
result, the same key with another body is a 422 `idempotency-key-reused`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header

from core.errors import IdempotencyKeyRequired

MAX_KEY_LENGTH = 200

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=f"a unique key per operation (e.g. a UUID), 1..{MAX_KEY_LENGTH} characters",
    ),
]


def key_digest(raw: str | None) -> str:
    """Validate the header and return its digest (what is stored)."""
    if raw is None or not raw.strip():
        raise IdempotencyKeyRequired("send a unique Idempotency-Key header (e.g. a UUID)")
    if len(raw) > MAX_KEY_LENGTH or not raw.isprintable():
        raise IdempotencyKeyRequired(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} printable chars")
    return hashlib.sha256(raw.strip().encode()).hexdigest()


def request_hash(body: dict[str, Any]) -> str:
    """Canonical hash of a request body, to detect a key reused with different content."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
