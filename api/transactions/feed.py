"""What every processor-feed event goes through: errors, audit, dedupe by event id, the account.

An event id is claimed with a `webhook_events` row `processor:<event id>` (INSERT ... ON
CONFLICT DO NOTHING) in the same transaction as the event's effect starts, so a redelivery is
answered `duplicate` and an effect that fails to start leaves no row (the processor delivers
again).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.services import Services
from core.db import transaction
from core.errors import AppError
from models.audit import record_audit
from models.ledger.tables import AccountKind, LedgerAccount
from models.payments.tables import WebhookEvent

EVENT_ROW_PREFIX = "processor:"


class InvalidProcessorSignature(AppError):
    status, type, title = 401, "invalid-processor-signature", "Missing, invalid or stale signature"


class MalformedProcessorEvent(AppError):
    status, type, title = 400, "malformed-processor-event", "The body is not a processor event"


async def audit_feed(
    services: Services, action: str, client: str, subject: str, details: dict[str, object]
) -> None:
    """Append one `processor.*` audit row in its own transaction."""
    async with transaction(services.sessions) as session:
        await record_audit(session, action, subject=subject, client=client, details=details)


@asynccontextmanager
async def audit_rejections(services: Services, client: str, subject: str) -> AsyncIterator[None]:
    """Audit (`processor.rejected`) and re-raise a problem found while reading an event."""
    try:
        yield
    except AppError as exc:
        details: dict[str, object] = {"reason": exc.type, "detail": exc.detail[:200]}
        await audit_feed(services, "processor.rejected", client, subject, details)
        raise


async def customer_account(services: Services, number: str) -> LedgerAccount | None:
    """The customer account with that number, if any (closed ones too: the ledger refuses)."""
    async with services.reads() as session:
        found: LedgerAccount | None = (
            await session.execute(
                select(LedgerAccount).where(
                    col(LedgerAccount.number) == number,
                    col(LedgerAccount.kind) == AccountKind.CUSTOMER,
                )
            )
        ).scalar_one_or_none()
    return found


async def claim_event(
    session: AsyncSession, event_id: str, type_: str, payload: dict[str, object], client: str
) -> bool:
    """Claim an event id for this delivery; False (and audited) when it was seen before."""
    inserted = (
        await session.execute(
            insert(WebhookEvent)
            .values(event_id=EVENT_ROW_PREFIX + event_id, type=type_, payload=payload)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(col(WebhookEvent.event_id))
        )
    ).scalar_one_or_none()
    if inserted is None:
        await record_audit(
            session, "processor.duplicate", subject=f"processor_event:{event_id}", client=client
        )
    return inserted is not None


async def record_unmatched(
    session: AsyncSession, event_id: str, client: str, details: dict[str, object]
) -> None:
    """Audit an event about no account (or no authorisation) of ours."""
    await record_audit(
        session,
        "processor.unmatched",
        subject=f"processor_event:{event_id}",
        client=client,
        details=details,
    )
