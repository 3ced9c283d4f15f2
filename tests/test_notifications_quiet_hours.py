"""Quiet hours defer email and push with a durable timer (time-skipping server); the in-app
notice is stored at once, and security notices do not wait."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.notifications.events import LOGIN_NEW_DEVICE, USER_EVENTS_TOPIC
from activities.notifications.feed import start_notification
from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.ledger.tables import OutboxEvent
from models.notifications.payloads import NotificationState
from temporal.handles import handle_for
from tests import ledger_support
from tests.notifications_support import eventually, notice_settings, notices, outbox_of, prefer
from tests.replay_support import HISTORIES, recorded, replay, replay_history
from workers.assembly import WorkerDeps, build_workers
from workflows.notification import NotificationWorkflow

ZONE = "Asia/Tokyo"


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test queues and workflow-id prefix."""
    return notice_settings(base_settings)


async def _quiet_now(sessions: SessionFactory, name: str, hours_left: int) -> tuple[object, str]:
    """A user whose quiet hours (in Tokyo) began an hour ago and end in `hours_left` hours."""
    user_id = await ledger_support.new_user(sessions, name)
    local = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).replace(second=0, microsecond=0)
    await prefer(
        sessions,
        user_id,
        time_zone=ZONE,
        quiet_start=(local - timedelta(hours=1)).time(),
        quiet_end=(local + timedelta(hours=hours_left)).time(),
    )
    return user_id, ZONE


async def _state(handle: WorkflowHandle[NotificationWorkflow, NotificationState]) -> str:
    return (await handle.query(NotificationWorkflow.status)).status


async def test_quiet_hours_defer_the_email_and_push_until_they_end(
    time_skipping: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    client = time_skipping.client
    user_id, _ = await _quiet_now(sessions, "ada", hours_left=3)
    account = await ledger_support.open_account(sessions, user_id)  # type: ignore[arg-type]
    await ledger_support.fund(sessions, account.account_id, 9_900)
    [funding] = await outbox_of(sessions, "transaction.created")
    workers = build_workers(client, WorkerDeps(settings=settings, sessions=sessions, email=outbox))
    async with workers[0], workers[1]:
        workflow_id = await start_notification(
            client, settings, int(funding.id or 0), funding.type, funding.user_id
        )
        handle = handle_for(client, NotificationWorkflow.run, workflow_id)

        async def quiet() -> bool | None:
            return await _state(handle) == "quiet" or None

        await eventually(quiet, "the workflow to wait for the end of quiet hours")
        stored = await notices(sessions, funding.user_id)  # type: ignore[arg-type]
        waiting = await handle.query(NotificationWorkflow.status)
        mails_before = list(outbox.outbox)
        pushes_before = await outbox_of(sessions, "notification.new")

        await time_skipping.sleep(timedelta(hours=3, minutes=1))  # past the end of quiet hours
        result = await handle.result()

    assert [n.title for n in stored] == ["You received 99.00 EUR"]  # in-app at once
    assert mails_before == []
    assert pushes_before == []
    assert waiting.deliver_at is not None
    assert (
        timedelta(hours=2, minutes=58)
        < waiting.deliver_at - datetime.now(UTC)
        < (timedelta(hours=3))
    )
    assert result.status == "delivered"
    assert [m.subject for m in outbox.outbox] == ["You received 99.00 EUR"]
    assert len(await outbox_of(sessions, "notification.new")) == 1
    history = await handle.fetch_history()
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert len(timers) == 1
    assert timedelta(hours=2, minutes=58) < timers[0] <= timedelta(hours=3)
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "notification_quiet_hours.json").write_text(history.to_json())
    await replay_history(history, NotificationWorkflow)


@pytest.mark.parametrize("path", recorded("NotificationWorkflow"), ids=lambda p: p.stem)
async def test_recorded_notification_histories_replay(path: Path) -> None:
    await replay(path, NotificationWorkflow)


async def test_a_security_notice_does_not_wait_for_quiet_hours(
    time_skipping: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    client = time_skipping.client
    user_id, _ = await _quiet_now(sessions, "bob", hours_left=5)
    async with transaction(sessions) as session:
        event = OutboxEvent(
            topic=USER_EVENTS_TOPIC,
            type=LOGIN_NEW_DEVICE,
            aggregate_id=user_id,  # type: ignore[arg-type]
            user_id=user_id,  # type: ignore[arg-type]
            payload={"device": "Firefox on Linux", "at": "2026-12-06T05:00:00+00:00"},
        )
        session.add(event)
    workers = build_workers(client, WorkerDeps(settings=settings, sessions=sessions, email=outbox))
    async with workers[0], workers[1]:
        workflow_id = await start_notification(
            client, settings, int(event.id or 0), event.type, event.user_id
        )
        handle = handle_for(client, NotificationWorkflow.run, workflow_id)
        result = await handle.result()

    assert result.status == "delivered"
    [mail] = outbox.outbox
    assert mail.subject == "New login to your account"
    assert "new device (Firefox on Linux) at 2026-12-06 14:00 JST" in mail.body
    history = await handle.fetch_history()
    assert EventType.EVENT_TYPE_TIMER_STARTED not in [e.event_type for e in history.events]
