"""The payment rail's signed webhook: outbound payment outcomes and inbound payments.

Order of checks: HMAC signature and freshness (`core.signatures.verify`; 401 + audit
`webhook.rejected`), then the body (400 + audit), then dedupe by event id (a row in
`webhook_events` inserted ON CONFLICT DO NOTHING; a replay answers `{"duplicate": true}` and
does nothing else). The event row and its effect commit in one transaction, so an effect that
fails (Temporal unreachable) leaves no row and the rail's redelivery tries again.

- `payment.settled` / `payment.rejected`: the `rail_event` signal to the payment's
  ExternalPaymentWorkflow (the rail's reference is our payment id). An unknown reference is
  answered 200 (nothing leaks to the caller) and audited `webhook.unmatched`.
- `inbound.received`: one journal entry, external settlement -> the customer account with that
  number, under the ledger idempotency key `inbound:<inbound_id>` (the same inbound under
  another event id is credited once and audited `inbound.duplicate`), in the same transaction
  as the event row; no workflow, because it is a single atomic idempotent write with nothing
  to wait for. Money for an unknown, closed or other-currency account is credited to the
  currency's suspense account for ops to return or reassign (audit `inbound.unmatched`).
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.service import RPCError, RPCStatusCode

from activities.ledger import (
    IDEMPOTENCY_KEY_REUSED,
    LedgerError,
    ensure_system_accounts,
    post_entry,
)
from activities.providers.rail import RailInboundEvent, RailPaymentEvent, parse_rail_event
from api.deps import ClientDep, ServicesDep
from api.openapi_problems import problems
from api.services import Services
from core.db import transaction
from core.errors import AppError
from core.signatures import SIGNATURE_HEADER, verify
from models.audit import record_audit
from models.ledger.payloads import (
    EnsureSystemAccountsInput,
    EntryLeg,
    EntryResult,
    PostEntryInput,
)
from models.ledger.tables import AccountKind, AccountStatus, JournalEntry, LedgerAccount
from models.money import CurrencyError, get_currency
from models.payments.payloads import RailPaymentSnapshot
from models.payments.tables import Payment, PaymentKind, PaymentStatus, WebhookEvent
from models.text import scrub

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
EVENT_ID_HEADER = "X-Rail-Event-Id"
_EXPECTED_STATUS = {
    "payment.settled": PaymentStatus.COMPLETED,
    "payment.rejected": PaymentStatus.REJECTED,
}


class InvalidWebhookSignature(AppError):
    status, type, title = 401, "invalid-webhook-signature", "Missing, invalid or stale signature"


class MalformedWebhook(AppError):
    status, type, title = 400, "malformed-webhook", "The webhook body is not a known rail event"


class WebhookAck(BaseModel):
    """The answer to the rail: received, and whether it was a replay of a known event."""

    received: bool = True
    duplicate: bool = False


async def _audit(services: Services, action: str, client: str, details: dict[str, object]) -> None:
    async with transaction(services.sessions) as session:
        await record_audit(session, action, subject="rail_webhook", client=client, details=details)


@router.post("/rail", responses=problems(400, 401, 413))
async def rail_webhook(request: Request, services: ServicesDep, client: ClientDep) -> WebhookAck:
    """Receive a signed rail event once: payment outcome -> workflow signal; inbound -> credit."""
    body = await request.body()
    header = request.headers.get(SIGNATURE_HEADER)
    hint = scrub(request.headers.get(EVENT_ID_HEADER, ""), 100)
    secret = services.settings.rail_webhook_secret.get_secret_value()
    if not verify(secret, body, header, time.time()):
        reason = "unsigned" if not header else "invalid or stale signature"
        await _audit(services, "webhook.rejected", client, {"reason": reason, "event_id": hint})
        raise InvalidWebhookSignature(f"webhook refused: {reason}")
    try:
        event = parse_rail_event(body)
    except ValidationError as exc:
        await _audit(
            services,
            "webhook.rejected",
            client,
            {"reason": "malformed", "event_id": hint, "errors": exc.error_count()},
        )
        raise MalformedWebhook("the body is not a valid rail event") from exc
    async with transaction(services.sessions) as session:
        inserted = (
            await session.execute(
                insert(WebhookEvent)
                .values(
                    event_id=event.event_id,
                    type=event.type,
                    payload=event.model_dump(mode="json"),
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(col(WebhookEvent.event_id))
            )
        ).scalar_one_or_none()
        if inserted is None:
            return WebhookAck(duplicate=True)
        if isinstance(event, RailPaymentEvent):
            await _payment_outcome(services, session, event, client)
        else:
            await _inbound(session, event, client)
    return WebhookAck()


async def _payment_outcome(
    services: Services, session: AsyncSession, event: RailPaymentEvent, client: str
) -> None:
    """Relay a payment's final state to its workflow as the `rail_event` signal."""
    try:
        payment = await session.get(Payment, uuid.UUID(event.reference))
    except ValueError:
        payment = None
    if payment is None or payment.kind != PaymentKind.EXTERNAL:
        await record_audit(
            session,
            "webhook.unmatched",
            subject=f"rail_event:{event.event_id}",
            client=client,
            details={"type": event.type, "reference": event.reference[:100]},
        )
        return
    snapshot = RailPaymentSnapshot(
        rail_payment_id=event.rail_payment_id,
        status=event.status,
        reason=event.reason,
        amount=event.amount,
        currency=event.currency,
    )
    why = snapshot.disagreement(payment.rail_payment_id, payment.amount, payment.currency)
    if why is not None:  # the workflow would ignore it too; keep a trace for ops
        await record_audit(
            session,
            "webhook.foreign_outcome",
            subject=f"payment:{payment.id}",
            client=client,
            details={"type": event.type, "rail_payment_id": event.rail_payment_id, "why": why},
        )
        return
    handle = services.temporal.get_workflow_handle(payment.workflow_id)
    try:
        await handle.signal("rail_event", snapshot)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unavailable: no event row is kept, the rail delivers again
        # The workflow has finished (polling got there first); flag only a disagreement.
        if payment.status != _EXPECTED_STATUS[event.type]:
            await record_audit(
                session,
                "webhook.mismatch",
                subject=f"payment:{payment.id}",
                client=client,
                details={"type": event.type, "payment_status": payment.status},
            )


async def _inbound(session: AsyncSession, event: RailInboundEvent, client: str) -> None:
    """Credit the account with that number (or suspense) exactly once."""
    key = f"inbound:{event.inbound_id}"
    booked = await session.scalar(
        select(col(JournalEntry.id)).where(col(JournalEntry.idempotency_key) == key)
    )
    if booked is not None:  # the same inbound payment under another event id
        await record_audit(
            session,
            "inbound.duplicate",
            subject=f"inbound:{event.inbound_id}",
            client=client,
            details={"entry_id": str(booked), "event_id": event.event_id},
        )
        return
    try:
        currency = get_currency(event.currency).code
    except CurrencyError:
        await record_audit(
            session,
            "inbound.unmatched",
            subject=f"inbound:{event.inbound_id}",
            client=client,
            details={"reason": "unknown currency", "currency": event.currency},
        )
        return
    account = (
        await session.execute(
            select(LedgerAccount).where(
                col(LedgerAccount.number) == event.to_account_number,
                col(LedgerAccount.kind) == AccountKind.CUSTOMER,
            )
        )
    ).scalar_one_or_none()
    system = await ensure_system_accounts(session, EnsureSystemAccountsInput(currency=currency))
    problem = None
    if account is None:
        problem = "unknown account number"
    elif account.status != AccountStatus.OPEN:
        problem = "account closed"
    elif account.currency != currency:
        problem = f"account holds {account.currency}"
    target = system.suspense if account is None or problem else account.id
    description = (event.reference or "Incoming payment")[:500]

    async def book(to: uuid.UUID) -> EntryResult:
        async with session.begin_nested():  # a refusal rolls back only this attempt
            return await post_entry(
                session,
                PostEntryInput(
                    idempotency_key=key,
                    kind="inbound_payment",
                    description=description,
                    legs=[
                        EntryLeg(
                            account_id=system.external_settlement,
                            amount=-event.amount,
                            currency=currency,
                        ),
                        EntryLeg(
                            account_id=to,
                            amount=event.amount,
                            currency=currency,
                            counterparty=event.debtor_name[:200],
                            description=description,
                            category="income",
                        ),
                    ],
                    occurred_at=event.occurred_at,
                ),
            )

    try:
        try:
            entry = await book(target)
        except LedgerError as exc:
            if exc.type == IDEMPOTENCY_KEY_REUSED or target == system.suspense:
                raise
            # e.g. the account was closed after the check above: park the money instead
            problem, target = f"{exc.type}: {exc.message}", system.suspense
            entry = await book(target)
    except LedgerError as exc:
        already = exc.type == IDEMPOTENCY_KEY_REUSED  # this inbound id was booked before
        await record_audit(
            session,
            "inbound.duplicate" if already else "inbound.unmatched",
            subject=f"inbound:{event.inbound_id}",
            client=client,
            details={"reason": f"{exc.type}: {exc.message}", "credited_to": None},
        )
        return
    details: dict[str, object] = {
        "entry_id": str(entry.entry_id),
        "amount": event.amount,
        "currency": currency,
    }
    if problem is None:
        await record_audit(
            session,
            "inbound.credited",
            subject=f"ledger_account:{target}",
            client=client,
            details=details,
        )
    else:
        await record_audit(
            session,
            "inbound.unmatched",
            subject=f"inbound:{event.inbound_id}",
            client=client,
            details=details | {"reason": problem, "credited_to": "suspense"},
        )
