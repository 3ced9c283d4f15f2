"""The notification feed: a Redis consumer group (`notifier`) on the event streams that starts
one NotificationWorkflow per event and recipient.

Exactly once per event: the workflow id is built from the outbox event id
(`temporal.ids.notification_workflow_id`) and started with REJECT_DUPLICATE, so a redelivered
entry (a re-publish after a relay crash, a consumer that died before XACK) finds its workflow
and is only acknowledged. An entry is acknowledged after Temporal accepted the start; one whose
start failed stays pending and is claimed again (XAUTOCLAIM) once it has been idle long enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.notifications.events import StreamEvent, deserves_notice, parse_entry
from core.logging import get_logger
from core.settings import Settings
from models.notifications.payloads import NotificationInput
from temporal import search_attributes
from temporal.ids import notification_workflow_id
from workflows.notification import NotificationWorkflow

log = get_logger(__name__)
_Read = list[tuple[str, list[tuple[str, dict[str, str]]]]] | None  # XREADGROUP, decoded


async def start_notification(
    client: Client, settings: Settings, event_id: int, event_type: str, user_id: uuid.UUID | None
) -> str:
    """Start the event's NotificationWorkflow unless it was started before; returns its id."""
    workflow_id = notification_workflow_id(
        event_id, user_id, settings.notification_workflow_id_prefix
    )
    attributes = [SearchAttributePair(search_attributes.STATUS, "notification_recording")]
    if user_id is not None:
        attributes.append(SearchAttributePair(search_attributes.USER_ID, str(user_id)))
    with contextlib.suppress(WorkflowAlreadyStartedError):  # a redelivery: already on its way
        await client.start_workflow(
            NotificationWorkflow.run,
            NotificationInput(
                event_id=event_id,
                event_type=event_type,
                user_id=user_id,
                email_task_queue=settings.external_task_queue,
                activity_timeout_seconds=settings.db_activity_timeout_seconds,
            ),
            id=workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(attributes),
            static_summary=f"Notification of {event_type}",
        )
    return workflow_id


class NotificationFeed:
    """Reads the event streams as consumer group `notifier` until `stop` is set."""

    def __init__(self, redis: Redis, client: Client, settings: Settings) -> None:
        self._redis, self._client, self._settings = redis, client, settings
        self._group = settings.notification_consumer_group
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    async def run(self, stop: asyncio.Event) -> None:
        """Create the group if needed, then read, start and acknowledge until `stop`."""
        await self.ensure_groups()
        st = self._settings
        claim_every = st.notification_claim_idle_ms / 2000
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if loop.time() >= next_claim:
                    await self.claim_stale()
                    next_claim = loop.time() + claim_every
                await self.read_once(block_ms=st.notification_block_ms)
            except (RedisConnectionError, RedisTimeoutError):  # a Redis blip: wait, go on
                log.warning("notification feed cannot reach Redis; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def ensure_groups(self) -> None:
        """Create the consumer group on each stream (from its start: nothing relayed before
        the first worker ran is missed)."""
        for stream in self._settings.notification_streams:
            try:
                await self._redis.xgroup_create(stream, self._group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read_once(self, block_ms: int | None = None) -> int:
        """Read new entries once (waiting up to `block_ms`) and handle them; returns how many."""
        streams: dict[str, str] = dict.fromkeys(self._settings.notification_streams, ">")
        answer = await self._redis.xreadgroup(
            self._group,
            self._consumer,
            streams,  # type: ignore[arg-type]
            count=self._settings.notification_batch_size,
            block=block_ms,
        )
        handled = 0
        for stream, entries in cast(_Read, answer) or []:
            for entry_id, fields in entries:
                await self._handle(stream, entry_id, fields)
                handled += 1
        return handled

    async def claim_stale(self) -> int:
        """Take over entries another (crashed) consumer left unacknowledged, and handle them."""
        handled = 0
        for stream in self._settings.notification_streams:
            reply = await self._redis.xautoclaim(
                stream,
                self._group,
                self._consumer,
                min_idle_time=self._settings.notification_claim_idle_ms,
                start_id="0-0",
                count=self._settings.notification_batch_size,
            )
            claimed: list[tuple[str, dict[str, str] | None]] = reply[1]
            for entry_id, fields in claimed:
                if fields:  # None: the entry was trimmed from the stream meanwhile
                    await self._handle(stream, entry_id, fields)
                    handled += 1
                else:
                    await self._redis.xack(stream, self._group, entry_id)
        return handled

    async def _handle(self, stream: str, entry_id: str, fields: dict[str, str]) -> None:
        event = parse_entry(stream, entry_id, fields)
        if event is not None and deserves_notice(event, self._settings):
            try:
                await self._start(event)
            except Exception:  # Temporal unreachable: stays pending, claimed again later
                log.exception("notification start failed", stream=stream, entry=entry_id)
                return
        await self._redis.xack(stream, self._group, entry_id)

    async def _start(self, event: StreamEvent) -> None:
        await start_notification(
            self._client, self._settings, event.event_id, event.type, event.user_id
        )
