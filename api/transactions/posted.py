"""`transaction.posted` from the processor feed: a cleared card or cash transaction, booked by
RecordExternalTransactionWorkflow keyed by (account, external id)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from fastapi import Response, status
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from activities.memos import MEMO_ID_PREFIX
from api.money import MAX_CLOCK_SKEW, entry_money
from api.services import Services
from api.transactions.feed import (
    MalformedProcessorEvent,
    audit_feed,
    audit_rejections,
    claim_event,
    record_unmatched,
)
from core.db import transaction
from core.errors import AppError
from models.base import utcnow
from models.ledger.payloads import ExternalEntryInput
from models.ledger.tables import LedgerAccount
from models.transactions.payloads import ExternalTransactionInput, RecordedExternalTransaction
from models.transactions.schemas import ProcessorAck, ProcessorEvent
from temporal import search_attributes
from temporal.errors import application_error
from temporal.ids import external_transaction_workflow_id
from workflows.external_transaction import RecordExternalTransactionWorkflow


def ledger_entry(event: ProcessorEvent, account: LedgerAccount) -> ExternalEntryInput:
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


async def book_posted(
    services: Services,
    event: ProcessorEvent,
    account: LedgerAccount | None,
    client: str,
    response: Response,
) -> ProcessorAck:
    """Book a posted transaction once; `unmatched` for an unknown account number."""
    subject = f"processor_event:{event.event_id}"
    async with audit_rejections(services, client, subject):
        entry = ledger_entry(event, account) if account is not None else None
    async with transaction(services.sessions) as session:
        payload = event.model_dump(mode="json")
        if not await claim_event(session, event.event_id, event.type, payload, client):
            return ProcessorAck(duplicate=True)
        if account is None or entry is None:
            details: dict[str, object] = {
                "reason": "unknown account number",
                "external_id": event.external_id,
            }
            await record_unmatched(session, event.event_id, client, details)
            return ProcessorAck(outcome="unmatched", reason="unknown-account")
        request_hash = hashlib.sha256(entry.model_dump_json().encode()).hexdigest()
        # ALLOW_DUPLICATE: a later run under the same id replays the ledger's first result;
        # USE_EXISTING: a concurrent redelivery shares the running workflow.
        handle = await services.temporal.start_workflow(
            RecordExternalTransactionWorkflow.run,
            ExternalTransactionInput(
                request=entry,
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
                    SearchAttributePair(search_attributes.AMOUNT, entry.amount),
                    SearchAttributePair(search_attributes.CURRENCY, entry.currency),
                ]
            ),
            static_summary="Book a card or cash transaction reported by the processor feed",
        )
    return await _outcome(services, handle, request_hash, subject, client, response)


async def _failed(
    services: Services, exc: WorkflowFailureError, subject: str, client: str
) -> ProcessorAck:
    """The booking workflow failed for no business reason (its step exhausted its retries):
    answered `declined` with reason `booking-failed` and audited, so the processor knows the
    transaction was not booked (never an endless wait)."""
    cause = application_error(exc)
    details: dict[str, object] = {
        "reason": "booking-failed",
        "cause": cause.type if cause is not None else None,
    }
    await audit_feed(services, "processor.failed", client, subject, details)
    return ProcessorAck(outcome="declined", reason="booking-failed")


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
        if problem is None:  # the booking step ran out of its retry budget: a clear end
            return await _failed(services, exc, subject, client)
        await audit_feed(
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
        await audit_feed(
            services, "processor.declined", client, subject, {"reason": "idempotency-key-reused"}
        )
        return ProcessorAck(outcome="declined", reason="idempotency-key-reused")
    await audit_feed(
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
