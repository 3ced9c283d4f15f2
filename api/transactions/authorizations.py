"""Card authorisations from the processor feed: `authorization.created` places a hold through
CardAuthorizationWorkflow and answers `authorized` or `declined`; `authorization.cleared`
captures (up to the authorised amount) and `authorization.reversed` releases it, as updates of
that workflow. Every outcome is audited (`processor.authorized|declined|cleared|reversed`).

A clearing or reversal is claimed (event row) in the same transaction as its update is
answered: if Temporal does not answer in time, nothing is kept and the processor's redelivery
sends the update again, which the workflow treats as the same clearing (by `clearing_id`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from fastapi import Response, status
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.money import currency_code, minor_units
from api.services import Services
from api.transactions.feed import (
    MalformedProcessorEvent,
    audit_feed,
    audit_rejections,
    claim_event,
    record_unmatched,
)
from core import errors
from core.db import transaction
from core.errors import AppError
from models.base import utcnow
from models.ledger.tables import LedgerAccount
from models.transactions.payloads import (
    CardAuthorizationInput,
    CardAuthorizationState,
    CardClearingInput,
)
from models.transactions.schemas import (
    CardAuthorizationEvent,
    CardClearingEvent,
    CardReversalEvent,
    ProcessorAck,
    ProcessorOutcome,
)
from temporal.errors import application_error
from temporal.ids import card_authorization_workflow_id
from workflows.card_authorization import CardAuthorizationWorkflow

MAX_AUTHORIZATION = timedelta(days=30)
Handle = WorkflowHandle[Any, CardAuthorizationState]
_OUTCOMES: dict[str, ProcessorOutcome] = {
    "authorized": "authorized",
    "cleared": "cleared",
    "reversed": "reversed",
}


def _expiry(event: CardAuthorizationEvent, hold_seconds: int) -> datetime:
    now = utcnow()
    expires_at = event.expires_at or now + timedelta(seconds=hold_seconds)
    if not now < expires_at <= now + MAX_AUTHORIZATION:
        raise MalformedProcessorEvent("expires_at must be in the future, within 30 days")
    return expires_at


def _ack(state: CardAuthorizationState) -> ProcessorAck:
    if state.status == "declined":
        return ProcessorAck(outcome="declined", reason=AppError.slug_for(state.reason))
    outcome = _OUTCOMES.get(state.status)
    if outcome is None:  # expired, or still authorizing
        return ProcessorAck(outcome="declined", reason=f"authorization-{state.status}")
    return ProcessorAck(outcome=outcome, transaction_id=state.transaction_id)


async def authorize(
    services: Services,
    event: CardAuthorizationEvent,
    account: LedgerAccount | None,
    client: str,
    response: Response,
) -> ProcessorAck:
    """Place the hold (or decline) once per authorisation id."""
    subject = f"processor_event:{event.event_id}"
    async with audit_rejections(services, client, subject):
        currency = currency_code(event.currency)
        amount = minor_units(event.amount, currency)
        expires_at = _expiry(event, services.settings.card_authorization_hold_seconds)
    async with transaction(services.sessions) as session:
        payload = event.model_dump(mode="json")
        if not await claim_event(session, event.event_id, event.type, payload, client):
            return ProcessorAck(duplicate=True)
        if account is None or account.owner_user_id is None:
            await record_unmatched(
                session, event.event_id, client, {"reason": "unknown account number"}
            )
            return ProcessorAck(outcome="unmatched", reason="unknown-account")
        workflow_id = card_authorization_workflow_id(account.id, event.authorization_id)
        handle: Handle
        try:
            handle = await services.temporal.start_workflow(
                CardAuthorizationWorkflow.run,
                CardAuthorizationInput(
                    account_id=account.id,
                    user_id=account.owner_user_id,
                    authorization_id=event.authorization_id,
                    amount=amount,
                    currency=currency,
                    description=event.description,
                    merchant=event.merchant,
                    expires_at=expires_at,
                    activity_timeout_seconds=services.settings.db_activity_timeout_seconds,
                ),
                id=workflow_id,
                task_queue=services.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary="Card authorisation: hold until cleared, reversed or lapsed",
            )
        except WorkflowAlreadyStartedError:  # this authorisation already ended
            handle = services.temporal.get_workflow_handle(
                workflow_id, result_type=CardAuthorizationState
            )
    try:
        state = await asyncio.wait_for(
            handle.execute_update(CardAuthorizationWorkflow.authorize),
            services.settings.processor_wait_seconds,
        )
    except TimeoutError:
        response.status_code = status.HTTP_202_ACCEPTED
        return ProcessorAck(outcome="pending")
    except RPCError as exc:  # the workflow has finished: its result is the answer
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        state = await handle.result()
    ack = _ack(state)
    action = "processor.authorized" if ack.outcome == "authorized" else "processor.declined"
    details: dict[str, object] = {"outcome": ack.outcome, "reason": ack.reason, "amount": amount}
    await audit_feed(services, action, client, subject, details)
    return ack


async def settle(
    services: Services,
    event: CardClearingEvent | CardReversalEvent,
    account: LedgerAccount | None,
    client: str,
) -> ProcessorAck:
    """Clear (capture) or reverse (release) an authorisation; a redelivery is idempotent."""
    subject = f"processor_event:{event.event_id}"
    clearing: CardClearingInput | None = None
    if isinstance(event, CardClearingEvent) and account is not None:
        async with audit_rejections(services, client, subject):
            amount = minor_units(event.amount, account.currency)
        clearing = CardClearingInput(clearing_id=event.clearing_id, amount=amount)
    async with transaction(services.sessions) as session:
        payload = event.model_dump(mode="json")
        if not await claim_event(session, event.event_id, event.type, payload, client):
            return ProcessorAck(duplicate=True)
        if account is None:
            await record_unmatched(session, event.event_id, client, {"reason": "unknown account"})
            return ProcessorAck(outcome="unmatched", reason="unknown-account")
        handle: Handle = services.temporal.get_workflow_handle(
            card_authorization_workflow_id(account.id, event.authorization_id),
            result_type=CardAuthorizationState,
        )
        try:
            state = await asyncio.wait_for(
                _send(handle, clearing), services.settings.processor_wait_seconds
            )
        except TimeoutError as exc:  # nothing kept: the redelivery sends the update again
            raise errors.ServiceUnavailable(
                "the authorisation did not answer", retry_after=1
            ) from exc
        except WorkflowUpdateFailedError as exc:
            cause = application_error(exc)
            reason = AppError.slug_for(cause.type if cause is not None else None)
            ack = ProcessorAck(outcome="declined", reason=reason or "authorization-closed")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            ack = await _after_the_end(handle, clearing)
            if ack.outcome == "unmatched":
                await record_unmatched(
                    session, event.event_id, client, {"reason": "unknown authorization"}
                )
                return ack
        else:
            ack = _ack(state)
    action = f"processor.{ack.outcome}"
    await audit_feed(services, action, client, subject, {"reason": ack.reason})
    return ack


async def _send(handle: Handle, clearing: CardClearingInput | None) -> CardAuthorizationState:
    if clearing is not None:
        return await handle.execute_update(CardAuthorizationWorkflow.clear, clearing)
    return await handle.execute_update(CardAuthorizationWorkflow.reverse)


async def _after_the_end(handle: Handle, clearing: CardClearingInput | None) -> ProcessorAck:
    """The answer when the workflow no longer runs: this very clearing/reversal (a redelivery
    after the end), another ending, or no such authorisation."""
    try:
        final = await handle.result()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return ProcessorAck(outcome="unmatched", reason="unknown-authorization")
    same = (
        final.status == "cleared"
        and clearing is not None
        and final.clearing_id == clearing.clearing_id
    ) or (final.status == "reversed" and clearing is None)
    if same:
        return _ack(final)
    return ProcessorAck(outcome="declined", reason=f"authorization-{final.status}")
