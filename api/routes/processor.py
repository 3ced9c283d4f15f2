"""The card processor / ATM network feed: the only way a card or cash transaction moves money.

Order of checks, like the rail webhook: HMAC signature and freshness over the raw body
(`X-Processor-Signature`, keyed with `VORTEX_PROCESSOR_WEBHOOK_SECRET`; 401 + audit
`processor.rejected`), then the body (400 / 422 + audit `processor.rejected`), then dedupe by
event id (`api.transactions.feed`; a replay answers `duplicate`, audited `processor.duplicate`).
An account number that is no customer account is answered `unmatched` (`processor.unmatched`).

Events (`type`):
- `transaction.posted` (the default): a cleared card or cash transaction, booked once per
  (account, external id) by RecordExternalTransactionWorkflow (`api.transactions.posted`);
- `authorization.created` / `.cleared` / `.reversed`: a card authorisation held, captured or
  released through CardAuthorizationWorkflow (`api.transactions.authorizations`).
A ledger refusal (insufficient funds, closed account, other currency, the same external id
with other content) is answered `declined` with its reason and audited.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import Field, TypeAdapter, ValidationError

from api.deps import ClientDep, ServicesDep
from api.openapi_problems import problems
from api.transactions.authorizations import authorize, settle
from api.transactions.feed import (
    InvalidProcessorSignature,
    MalformedProcessorEvent,
    audit_feed,
    customer_account,
)
from api.transactions.posted import book_posted
from core.signatures import PROCESSOR_SIGNATURE_HEADER, verify
from models.transactions.schemas import (
    CardAuthorizationEvent,
    CardClearingEvent,
    CardReversalEvent,
    ProcessorAck,
    ProcessorEvent,
)

router = APIRouter(prefix="/api/processor", tags=["card processor feed"])

AnyProcessorEvent = Annotated[
    ProcessorEvent | CardAuthorizationEvent | CardClearingEvent | CardReversalEvent,
    Field(discriminator="type"),
]
_EVENTS: TypeAdapter[
    ProcessorEvent | CardAuthorizationEvent | CardClearingEvent | CardReversalEvent
] = TypeAdapter(AnyProcessorEvent)


def _parse(
    body: bytes,
) -> ProcessorEvent | CardAuthorizationEvent | CardClearingEvent | CardReversalEvent:
    """The event in a verified body; `type` defaults to `transaction.posted`."""
    data = json.loads(body)
    if isinstance(data, dict):
        data.setdefault("type", "transaction.posted")
    return _EVENTS.validate_python(data)


@router.post(
    "/events",
    responses={
        202: {"description": "received; the booking is still running (outcome `pending`)"},
        401: {"description": "missing, invalid or stale signature"},
        **problems(400, 413, 422),
    },
)
async def processor_event(
    request: Request, services: ServicesDep, client: ClientDep, response: Response
) -> ProcessorAck:
    """Apply one signed processor event once per event id: book, hold, capture or release."""
    body = await request.body()
    header = request.headers.get(PROCESSOR_SIGNATURE_HEADER)
    secret = services.settings.processor_webhook_secret.get_secret_value()
    if not verify(secret, body, header, time.time()):
        reason = "unsigned" if not header else "invalid or stale signature"
        await audit_feed(
            services, "processor.rejected", client, "processor_feed", {"reason": reason}
        )
        raise InvalidProcessorSignature(f"event refused: {reason}")
    try:
        event = _parse(body)
    except (ValidationError, ValueError) as exc:
        count = exc.error_count() if isinstance(exc, ValidationError) else 1
        await audit_feed(
            services,
            "processor.rejected",
            client,
            "processor_feed",
            {"reason": "malformed", "errors": count},
        )
        found = exc.errors()[:20] if isinstance(exc, ValidationError) else []
        raise MalformedProcessorEvent(
            "the body is not a valid processor event",
            errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in found],
        ) from exc
    account = await customer_account(services, event.account_number)
    if isinstance(event, ProcessorEvent):
        return await book_posted(services, event, account, client, response)
    if isinstance(event, CardAuthorizationEvent):
        return await authorize(services, event, account, client, response)
    return await settle(services, event, account, client)
