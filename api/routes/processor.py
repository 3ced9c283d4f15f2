"""The card processor / ATM network feed: the only way a card or cash transaction moves money.

Order of checks, like the rail webhook: HMAC signature and freshness over the raw body
(`X-Processor-Signature`, keyed with `VORTEX_PROCESSOR_WEBHOOK_SECRET`; 401 + audit
`processor.rejected`), then the body (400 / 422 + audit `processor.rejected`), then dedupe by
event id (a `webhook_events` row `processor:<event id>` inserted ON CONFLICT DO NOTHING; a
replay answers `duplicate` and is audited `processor.duplicate`). An account number that is no
customer account is answered `unmatched` (audit `processor.unmatched`).

The event row and the workflow start commit together: if Temporal cannot take the start, no
row is kept and the processor's redelivery tries again. RecordExternalTransactionWorkflow books
the entry keyed by (account, external id), so an event delivered under two event ids is still
booked once; a ledger refusal (insufficient funds, closed account, other currency, the same
external id with other content) is answered `declined` with its reason and audited.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from activities.memos import MEMO_ID_PREFIX
from api.deps import ClientDep, ServicesDep
from api.money import MAX_CLOCK_SKEW, entry_money
from api.services import Services
from core.db import transaction
from core.errors import AppError
from core.signatures import PROCESSOR_SIGNATURE_HEADER, verify
from models.audit import record_audit
from models.base import utcnow
from models.ledger.payloads import ExternalEntryInput
from models.ledger.tables import AccountKind, LedgerAccount
from models.payments.tables import WebhookEvent
from models.transactions.payloads import ExternalTransactionInput, RecordedExternalTransaction
from models.transactions.schemas import ProcessorAck, ProcessorEvent
from temporal import search_attributes
from temporal.errors import application_error
from temporal.ids import external_transaction_workflow_id
from workflows.external_transaction import RecordExternalTransactionWorkflow

router = APIRouter(prefix="/api/processor", tags=["card processor feed"])
PROCESSOR_EVENTS_PATH = "/api/processor/events"
EVENT_ROW_PREFIX = "processor:"


class InvalidProcessorSignature(AppError):
    status, type, title = 401, "invalid-processor-signature", "Missing, invalid or stale signature"


class MalformedProcessorEvent(AppError):
    status, type, title = 400, "malformed-processor-event", "The body is not a processor event"


async def _audit(
    services: Services, action: str, client: str, subject: str, details: dict[str, object]
) -> None:
    async with transaction(services.sessions) as session:
        await record_audit(session, action, subject=subject, client=client, details=details)


def _request(event: ProcessorEvent, account: LedgerAccount) -> ExternalEntryInput:
    """The ledger request for an event (422 problems for amounts, currencies and categories)."""
    if event.external_id.startswith(MEMO_ID_PREFIX):
        raise MalformedProcessorEvent(f"external_id may not start with {MEMO_ID_PREFIX!r}")
    if event.occurred_at is not None and event.occurred_at > utcnow() + MAX_CLOCK_SKEW:
        raise MalformedProcessorEvent("occurred_at is in the future")
    amount, currency, category = entry_money(event.amount, event.currency, event.category)
    return ExternalEntryInput(
        account_id=account.id,
        external_id=event.external_id,
        amount=amount,
        currency=currency,
        direction=event.direction,
        kind=event.kind,
        description=event.description,
        merchant=event.merchant,
        counterparty=event.counterparty,
        category=category,
        occurred_at=event.occurred_at,
    )


@router.post(
    "/events",
    responses={
        202: {"description": "received; the booking is still running (outcome `pending`)"},
        401: {"description": "missing, invalid or stale signature"},
    },
)
async def processor_event(
    request: Request, services: ServicesDep, client: ClientDep, response: Response
) -> ProcessorAck:
    """Book one signed card or cash transaction from the processor once, per event id."""
    body = await request.body()
    header = request.headers.get(PROCESSOR_SIGNATURE_HEADER)
    secret = services.settings.processor_webhook_secret.get_secret_value()
    if not verify(secret, body, header, time.time()):
        reason = "unsigned" if not header else "invalid or stale signature"
        await _audit(services, "processor.rejected", client, "processor_feed", {"reason": reason})
        raise InvalidProcessorSignature(f"event refused: {reason}")
    try:
        event = ProcessorEvent.model_validate_json(body)
    except ValidationError as exc:
        await _audit(
            services,
            "processor.rejected",
            client,
            "processor_feed",
            {"reason": "malformed", "errors": exc.error_count()},
        )
        raise MalformedProcessorEvent(
            "the body is not a valid processor event",
            errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]],
        ) from exc
    subject = f"processor_event:{event.event_id}"
    async with services.reads() as session:
        account = (
            await session.execute(
                select(LedgerAccount).where(
                    col(LedgerAccount.number) == event.account_number,
                    col(LedgerAccount.kind) == AccountKind.CUSTOMER,
                )
            )
        ).scalar_one_or_none()
    try:
        ledger_request = _request(event, account) if account is not None else None
    except AppError as exc:
        details: dict[str, object] = {"reason": exc.type, "detail": exc.detail[:200]}
        await _audit(services, "processor.rejected", client, subject, details)
        raise
    async with transaction(services.sessions) as session:
        inserted = (
            await session.execute(
                insert(WebhookEvent)
                .values(
                    event_id=EVENT_ROW_PREFIX + event.event_id,
                    type=event.type,
                    payload=event.model_dump(mode="json"),
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(col(WebhookEvent.event_id))
            )
        ).scalar_one_or_none()
        if inserted is None:
            await record_audit(session, "processor.duplicate", subject=subject, client=client)
            return ProcessorAck(duplicate=True)
        if account is None or ledger_request is None:
            await record_audit(
                session,
                "processor.unmatched",
                subject=subject,
                client=client,
                details={"reason": "unknown account number", "external_id": event.external_id},
            )
            return ProcessorAck(outcome="unmatched", reason="unknown-account")
        request_hash = hashlib.sha256(ledger_request.model_dump_json().encode()).hexdigest()
        # ALLOW_DUPLICATE: a later run under the same id replays the ledger's first result;
        # USE_EXISTING: a concurrent redelivery shares the running workflow.
        handle = await services.temporal.start_workflow(
            RecordExternalTransactionWorkflow.run,
            ExternalTransactionInput(
                request=ledger_request,
                request_hash=request_hash,
                activity_timeout_seconds=services.settings.db_activity_timeout_seconds,
            ),
            id=external_transaction_workflow_id(account.id, event.external_id),
            task_queue=services.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.USER_ID, str(account.owner_user_id)),
                    SearchAttributePair(search_attributes.STATUS, "external_txn_recording"),
                    SearchAttributePair(search_attributes.AMOUNT, ledger_request.amount),
                    SearchAttributePair(search_attributes.CURRENCY, ledger_request.currency),
                ]
            ),
            static_summary="Book a card or cash transaction reported by the processor feed",
        )
    return await _outcome(services, handle, request_hash, subject, client, response)


async def _outcome(
    services: Services,
    handle: WorkflowHandle[Any, RecordedExternalTransaction],
    request_hash: str,
    subject: str,
    client: str,
    response: Response,
) -> ProcessorAck:
    """Wait (bounded) for the booking and say how it ended; every end is audited."""
    try:
        recorded = await asyncio.wait_for(handle.result(), services.settings.processor_wait_seconds)
    except WorkflowFailureError as exc:
        cause = application_error(exc)
        problem = AppError.from_failure(cause) if cause is not None else None
        if problem is None:
            raise
        await _audit(
            services,
            "processor.declined",
            client,
            subject,
            {"reason": problem.type, "detail": problem.detail[:200]},
        )
        return ProcessorAck(outcome="declined", reason=problem.type)
    except TimeoutError:
        response.status_code = status.HTTP_202_ACCEPTED
        return ProcessorAck(outcome="pending")
    result = recorded.result
    if recorded.request_hash != request_hash:
        # A concurrent delivery of the same external id with other content got there first.
        await _audit(
            services, "processor.declined", client, subject, {"reason": "idempotency-key-reused"}
        )
        return ProcessorAck(outcome="declined", reason="idempotency-key-reused")
    await _audit(
        services,
        "processor.recorded",
        client,
        subject,
        {
            "transaction_id": str(result.transaction_id),
            "entry_id": str(result.entry_id),
            "amount": result.amount,
            "currency": result.currency,
            "direction": result.direction,
        },
    )
    return ProcessorAck(outcome="recorded", transaction_id=result.transaction_id)


__all__ = ["PROCESSOR_EVENTS_PATH", "router"]
