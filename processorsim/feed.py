"""The processor's side of the feed: sign the exact bytes sent, deliver, retry on 5xx."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import httpx

from core.signatures import PROCESSOR_SIGNATURE_HEADER, sign
from models.ledger.tables import Direction
from models.transactions.schemas import (
    CardAuthorizationEvent,
    CardClearingEvent,
    CardReversalEvent,
    ProcessorAck,
    ProcessorEvent,
)

FEED_PATH = "/api/processor/events"


def processor_event(
    account_number: str,
    amount: str,
    currency: str,
    *,
    direction: Direction = Direction.DEBIT,
    external_id: str | None = None,
    event_id: str | None = None,
    kind: str = "card",
    occurred_at: datetime | None = None,
    **text: Any,
) -> ProcessorEvent:
    """A `transaction.posted` event; ids are generated when not given."""
    return ProcessorEvent.model_validate(
        {
            "event_id": event_id or f"evt_{uuid.uuid4().hex}",
            "account_number": account_number,
            "external_id": external_id or f"txn_{uuid.uuid4().hex}",
            "amount": amount,
            "currency": currency,
            "direction": direction,
            "kind": kind,
            "occurred_at": occurred_at,
            **text,
        }
    )


def card_authorization(
    account_number: str, authorization_id: str, amount: str, currency: str, **text: Any
) -> CardAuthorizationEvent:
    """An `authorization.created` event (a hold the bank places or declines)."""
    return CardAuthorizationEvent.model_validate(
        {
            "type": "authorization.created",
            "event_id": f"evt_{uuid.uuid4().hex}",
            "account_number": account_number,
            "authorization_id": authorization_id,
            "amount": amount,
            "currency": currency,
            **text,
        }
    )


def card_clearing(
    account_number: str, authorization_id: str, amount: str, clearing_id: str | None = None
) -> CardClearingEvent:
    """An `authorization.cleared` event (capture up to the authorised amount)."""
    return CardClearingEvent.model_validate(
        {
            "type": "authorization.cleared",
            "event_id": f"evt_{uuid.uuid4().hex}",
            "account_number": account_number,
            "authorization_id": authorization_id,
            "clearing_id": clearing_id or f"clr_{uuid.uuid4().hex}",
            "amount": amount,
        }
    )


class ProcessorFeed:
    """Delivers signed events to the bank over HTTP (any httpx client: live or ASGI)."""

    def __init__(self, http: httpx.AsyncClient, secret: str, *, attempts: int = 5) -> None:
        self._http, self._secret, self._attempts = http, secret, attempts

    def signed(self, body: bytes, at: int | None = None) -> dict[str, str]:
        """Headers for `body` signed now (or at `at`, unix seconds)."""
        stamp = int(time.time()) if at is None else at
        return {
            "Content-Type": "application/json",
            PROCESSOR_SIGNATURE_HEADER: sign(self._secret, body, stamp),
        }

    async def post_raw(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """One delivery of exactly these bytes and headers (tests forge and replay with it)."""
        return await self._http.post(FEED_PATH, content=body, headers=headers)

    async def send(
        self,
        event: ProcessorEvent | CardAuthorizationEvent | CardClearingEvent | CardReversalEvent,
    ) -> ProcessorAck:
        """Deliver one event, redelivering (same event id, fresh signature) on 5xx or no answer;
        raises for a 4xx, which redelivery cannot fix."""
        body = event.model_dump_json(exclude_none=True).encode()
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self.post_raw(body, self.signed(body))
            except httpx.TransportError:
                if attempt == self._attempts:
                    raise
            else:
                if response.status_code < 500:
                    response.raise_for_status()
                    return ProcessorAck.model_validate(response.json())
                if attempt == self._attempts:
                    response.raise_for_status()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")
