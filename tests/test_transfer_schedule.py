"""A scheduled transfer runs at its `execute_at` (time-skipping server): the timer fires, the
local-activity steps post the entry once, and the history replays."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.payments.payloads import PaymentState
from models.payments.tables import Payment, PaymentStatus
from temporal.handles import handle_for
from temporal.ids import transfer_workflow_id
from tests import ledger_support
from tests.conftest import TEST_CONVERTER
from tests.replay_support import HISTORIES
from tests.time_skipping_support import platform_on
from workflows.transfer import TransferWorkflow


async def test_a_scheduled_transfer_runs_at_its_time_and_moves_the_money_once(
    time_skipping: WorkflowEnvironment,
    settings: Settings,
    sessions: SessionFactory,
    outbox: MemoryEmailBackend,
) -> None:
    client = time_skipping.client
    user_id = await ledger_support.new_user(sessions, "dora")
    source = await ledger_support.funded_account(sessions, user_id, 10_000)
    savings = await ledger_support.funded_account(sessions, user_id, 0, name="Savings")
    body = {
        "from_account_id": str(source),
        "to_account_id": str(savings),
        "amount": "40.00",
        "currency": "EUR",
        "execute_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
    }
    async with platform_on(time_skipping, settings, sessions, outbox) as (api, services):
        token, _ = services.tokens.issue(user_id, "access", 900, sid=str(uuid.uuid4()))
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "rent-march"}
        scheduled = await api.post("/api/payments/transfer", headers=headers, json=body)
        assert scheduled.status_code == 202, scheduled.text
        assert scheduled.json()["status"] == "scheduled"
        payment_id = uuid.UUID(scheduled.json()["id"])
        assert await ledger_support.balances(sessions, source, savings) == [
            (10_000, 0),
            (0, 0),
        ]
        handle = handle_for(client, TransferWorkflow.run, transfer_workflow_id(payment_id))

        await time_skipping.sleep(timedelta(days=3, minutes=5))
        result = await handle.result()
        retry = await api.post("/api/payments/transfer", headers=headers, json=body)

    assert isinstance(result, PaymentState)
    assert result.status == PaymentStatus.COMPLETED
    assert retry.status_code == 200
    assert retry.json()["status"] == "completed"
    async with sessions() as session:
        row = await session.get(Payment, payment_id)
    assert row is not None
    assert (row.status, row.completed_at is not None) == (PaymentStatus.COMPLETED, True)
    assert await ledger_support.balances(sessions, source, savings) == [
        (6_000, 0),
        (4_000, 0),
    ]
    assert (await verify_ledger(sessions)).ok
    history = await handle.fetch_history()
    kinds = [event.event_type for event in history.events]
    assert EventType.EVENT_TYPE_TIMER_FIRED in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds  # local activities
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "transfer_scheduled.json").write_text(history.to_json())
    replayer = Replayer(workflows=[TransferWorkflow], data_converter=TEST_CONVERTER)
    await replayer.replay_workflow(history)
