"""Append-only, hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from models.base import timestamp


class AuditEvent(SQLModel, table=True):
    """One security-relevant event; `hash` chains it to the previous row."""

    __tablename__ = "audit_log"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    occurred_at: datetime = timestamp(server_now=True)
    action: str = Field(max_length=64, index=True)
    actor_user_id: uuid.UUID | None = Field(default=None, index=True)
    subject: str | None = Field(default=None, max_length=200)
    client: str | None = Field(default=None, max_length=100)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


GENESIS_HASH = "0" * 64
_AUDIT_LOCK_KEY = 0x7A0D17  # advisory lock serialising appends so the chain stays linear


def _canonical_body(
    action: str,
    actor: str | None,
    subject: str | None,
    client: str | None,
    details: dict[str, Any],
) -> str:
    return json.dumps(
        {"a": action, "u": actor, "s": subject, "c": client, "d": details},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def chain_hash(
    prev_hash: str,
    action: str,
    actor: str | None,
    subject: str | None,
    client: str | None,
    details: dict[str, Any],
) -> str:
    """sha256 over the previous hash and this event's canonical JSON."""
    body = _canonical_body(action, actor, subject, client, details)
    return hashlib.sha256(f"{prev_hash}{body}".encode()).hexdigest()


# The same hash as chain_hash, computed by PostgreSQL against the newest row, so an append is
# one statement after the lock (the lock comes first: a statement's snapshot is taken when it
# starts, and it must see the event appended just before).
_APPEND = text(
    """
    INSERT INTO audit_log (action, actor_user_id, subject, client, details, prev_hash, hash)
    SELECT :action, CAST(:actor AS UUID), :subject, :client, CAST(:details AS JSONB), p.prev,
           encode(sha256(convert_to(p.prev || CAST(:body AS TEXT), 'UTF8')), 'hex')
    FROM (SELECT COALESCE((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), :genesis)
          AS prev) AS p
    """
)


async def record_audit(
    session: AsyncSession,
    action: str,
    *,
    actor_user_id: uuid.UUID | None = None,
    subject: str | None = None,
    client: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event to the hash-chained audit log inside the caller's transaction."""
    details = details or {}
    actor = str(actor_user_id) if actor_user_id else None
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_KEY})
    await session.execute(
        _APPEND,
        {
            "action": action,
            "actor": actor,
            "subject": subject,
            "client": client,
            "details": json.dumps(details, default=str),
            "body": _canonical_body(action, actor, subject, client, details),
            "genesis": GENESIS_HASH,
        },
    )


async def verify_audit_chain(session: AsyncSession) -> int:
    """Recompute the chain; returns the number of events checked or raises ValueError."""
    prev, count = GENESIS_HASH, 0
    rows = await session.stream_scalars(select(AuditEvent).order_by(col(AuditEvent.id)))
    async for event in rows:
        actor = str(event.actor_user_id) if event.actor_user_id else None
        expected = chain_hash(prev, event.action, actor, event.subject, event.client, event.details)
        if event.prev_hash != prev or event.hash != expected:
            raise ValueError(f"audit chain broken at event {event.id}")
        prev, count = event.hash, count + 1
    return count
