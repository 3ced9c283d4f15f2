"""Idempotency-Key handling for money-moving POSTs: the payment row maps a key to its workflow."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import errors
from core.db import SessionFactory, transaction
from models.payments.tables import Payment

MAX_KEY_LENGTH = 200


class IdempotencyKeyRequired(errors.AppError):
    status, type, title = 400, "idempotency-key-required", "An Idempotency-Key header is required"


class IdempotencyKeyReused(errors.AppError):
    status, type, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another body"


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


async def existing_payment(session: AsyncSession, user_id: uuid.UUID, key: str) -> Payment | None:
    """The caller's payment already made with this Idempotency-Key, if any."""
    found: Payment | None = (
        await session.execute(
            select(Payment).where(
                col(Payment.user_id) == user_id, col(Payment.idempotency_key) == key
            )
        )
    ).scalar_one_or_none()
    return found


def replayed(previous: Payment, body_hash: str) -> Payment:
    """A retry must carry the same request as the first time."""
    if previous.request_hash != body_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    return previous


async def claim(
    sessions: SessionFactory,
    new_payment: Callable[[uuid.UUID], Payment],
    *,
    user_id: uuid.UUID,
    key: str,
    body_hash: str,
    on_first: Callable[[Any, Payment], Awaitable[None]] | None = None,
) -> tuple[Payment, bool]:
    """Insert the payment for this key, or return the one already there; (payment, created)."""
    candidate = new_payment(uuid.uuid4())
    async with transaction(sessions) as session:
        values = candidate.model_dump(exclude={"created_at", "updated_at"})
        # One statement in the common case: the new row comes back, or nothing on a conflict.
        row = (await session.execute(_CLAIM, values)).one_or_none()
        if row is None:
            existing = await existing_payment(session, user_id, key)
            assert existing is not None  # the conflict was on this very (user, key)
            if existing.request_hash != body_hash:
                raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
            return existing, False
        inserted = Payment(**row._mapping)
        if on_first is not None:
            await on_first(session, inserted)
    return inserted, True


# A Core statement built once: the ORM insert re-derives a cache key from every call's values.
_PAYMENTS: Table = Payment.__table__  # type: ignore[attr-defined]
_CLAIM = (
    insert(_PAYMENTS)
    .on_conflict_do_nothing(constraint="ux_payments_user_idempotency_key")
    .returning(*_PAYMENTS.columns)
)
