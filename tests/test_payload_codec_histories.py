"""Encrypted histories on the real stack: a transfer's history holds no clear text, staff
decode it through the codec server, an unknown key id fails workflow tasks (not the worker)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from api.codec.app import create_codec_app
from api.codec.auth import StaffCredentials, ops_token
from cli.codec_server import database_audit
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.embedded import venv_binary
from core.settings import Settings
from models.audit import AuditEvent
from railsim.server import serve_app
from temporal.client import data_converter
from temporal.codec import ENCODING, codec_for, is_encrypted
from temporal.ids import transfer_workflow_id
from tests.conftest import TEST_CONVERTER, TEST_SECRET
from tests.flows import Customer, fund, register_customer
from tests.rail_support import eventually
from tests.replay_support import replay_history
from workflows.transfer import TransferWorkflow

UI_ORIGIN = "http://localhost:8233"
DESCRIPTION = "Rent for flat 4B, Zuerich"
AMOUNT = "1234.57"
AMOUNT_MINOR = b"123457"


@pytest.fixture
async def codec_http(
    settings: Settings, sessions: SessionFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The codec server app (auditing to the test database) over the ASGI transport."""
    app = create_codec_app(
        codec_for(settings),
        StaffCredentials.from_settings(settings),
        settings.temporal_ui_origins,
        audit=database_audit(sessions),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://codec.test") as client:
        yield client


@pytest.fixture
def staff(settings: Settings) -> dict[str, str]:
    """Headers of a staff call from the Temporal UI."""
    return {"Authorization": f"Bearer {ops_token(settings)}", "Origin": UI_ORIGIN}


async def _completed_transfer(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A completed transfer between two customers: (payment, source account, destination)."""
    alice = await register_customer(api, outbox, "alice@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    source = await _main_account(api, alice)
    dest = await _main_account(api, bob)
    await fund(sessions, source["id"], 500_000, "EUR")
    body = {
        "from_account_id": source["id"],
        "to_account_number": dest["number"],
        "amount": AMOUNT,
        "currency": "EUR",
        "description": DESCRIPTION,
    }
    headers = alice.auth | {"Idempotency-Key": "codec-1"}
    answer = await api.post("/api/payments/transfer", headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "completed"
    return dict(answer.json()), source, dest


async def _main_account(api: httpx.AsyncClient, who: Customer) -> dict[str, Any]:
    return dict((await api.get("/api/accounts", headers=who.auth)).json()["items"][0])


async def _history(client: Client, payment_id: str) -> WorkflowHistory:
    handle = client.get_workflow_handle(transfer_workflow_id(uuid.UUID(payment_id)))
    return await handle.fetch_history()


def _payloads(message: Message, path: tuple[str, ...] = ()) -> Iterator[tuple[Payload, str]]:
    """Every Payload inside a protobuf message, with its field path (map keys included)."""
    if isinstance(message, Payload):
        yield message, ".".join(path)
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            items = [(field.name, value)]
        elif field.message_type.GetOptions().map_entry:
            items = [(f"{field.name}.{key}", item) for key, item in value.items()]
        else:
            items = [(field.name, item) for item in value]
        for name, item in items:
            if isinstance(item, Message):
                yield from _payloads(item, (*path, name))


# Clear by design: search attributes (indexed by the server for the UI's filters: ids,
# statuses, the amount; temporal/search_attributes.py) and the bookkeeping the SDK core writes
# into markers (a local activity's seq, attempt, type and times, whose result is encrypted; a
# patch's id).
SEARCH_ATTRIBUTES = ".search_attributes."
MARKER_BOOKKEEPING = tuple(
    f"marker_recorded_event_attributes.details.{key}." for key in ("data", "patch-data")
)
MARKER_KEYS = {
    "id",
    "deprecated",
    "seq",
    "attempt",
    "activity_id",
    "activity_type",
    "complete_time",
    "backoff",
    "original_schedule_time",
    "activation_index",
}


async def test_a_transfer_history_holds_no_clear_amount_account_or_description(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    temporal_client: Client,
) -> None:
    payment, source, dest = await _completed_transfer(api, outbox, sessions)
    history = await _history(temporal_client, payment["id"])
    raw = history.to_json().encode()
    found = [(p, where) for event in history.events for p, where in _payloads(event)]
    attributes = [p for p, where in found if SEARCH_ATTRIBUTES in where]
    markers = [p for p, where in found if where.startswith(MARKER_BOOKKEEPING)]
    others = [
        (p, where)
        for p, where in found
        if SEARCH_ATTRIBUTES not in where and not where.startswith(MARKER_BOOKKEEPING)
    ]
    # What a reader of the raw history sees, with the clear payloads' base64 decoded.
    readable = raw + b"".join(p.data for p in attributes + markers)

    assert len(others) >= 5  # the input, activity inputs and results, the result
    assert [where for p, where in others if not is_encrypted(p)] == []
    assert all(set(json.loads(p.data)) <= MARKER_KEYS for p in markers)
    for secret in (DESCRIPTION, source["id"], dest["id"], dest["number"]):
        assert secret.encode() not in readable
    assert AMOUNT_MINOR not in raw + b"".join(p.data for p in markers)
    assert AMOUNT_MINOR in b"".join(p.data for p in attributes)  # the one documented place
    await replay_history(history, TransferWorkflow)  # the encrypted history replays


async def test_staff_decode_an_encrypted_history_through_the_codec_server(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    temporal_client: Client,
    codec_http: httpx.AsyncClient,
    staff: dict[str, str],
) -> None:
    payment, source, _ = await _completed_transfer(api, outbox, sessions)
    history = await _history(temporal_client, payment["id"])
    sealed = [p for event in history.events for p, a in _payloads(event) if is_encrypted(p)]
    request = _ui_json(sealed)

    answer = await codec_http.post(
        "/decode", json=request, headers=staff | {"X-Namespace": "default"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == UI_ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"
    opened = [_from_ui_json(p) for p in answer.json()["payloads"]]
    assert len(opened) == len(sealed)
    assert all(p.metadata["encoding"] != ENCODING for p in opened)
    clear = b"".join(p.data for p in opened)
    assert DESCRIPTION.encode() in clear
    assert source["id"].encode() in clear
    assert AMOUNT_MINOR in clear
    async with sessions() as session:
        audited = [e for e in (await session.execute(_audit_rows())).scalars()]
    assert [(e.action, e.details["payloads"], e.subject) for e in audited] == [
        ("payload.decode", len(sealed), "default")
    ]


async def test_the_temporal_cli_shows_a_decrypted_history_through_the_codec_server(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    temporal_client: Client,
    settings: Settings,
) -> None:
    payment, _, _ = await _completed_transfer(api, outbox, sessions)
    workflow_id = transfer_workflow_id(uuid.UUID(payment["id"]))
    app = create_codec_app(
        codec_for(settings), StaffCredentials.from_settings(settings), settings.temporal_ui_origins
    )

    async with serve_app(app) as codec_server:
        shown = await _temporal_show(temporal_client, workflow_id, codec_server.url, settings)
        refused = await _temporal_show(temporal_client, workflow_id, codec_server.url, None)

    assert DESCRIPTION in shown
    assert DESCRIPTION not in refused


async def _temporal_show(
    client: Client, workflow_id: str, codec_url: str, settings: Settings | None
) -> str:
    """The payload data `temporal workflow show` prints when it decodes through the codec
    server (as staff when `settings` is given)."""
    args = [
        venv_binary("temporal"),
        "workflow",
        "show",
        "-w",
        workflow_id,
        "-o",
        "json",
        "--address",
        client.service_client.config.target_host,
        "--codec-endpoint",
        codec_url,
    ]
    if settings is not None:
        args += ["--codec-auth", f"Bearer {ops_token(settings)}"]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    # Payload data is base64 in the JSON output: decode it to read what the CLI was given.
    texts = (base64.b64decode(data) for data in re.findall(r'"data": "([^"]+)"', output.decode()))
    return b"\n".join(texts).decode(errors="replace")


def _audit_rows() -> Any:
    from sqlmodel import col, select

    return select(AuditEvent).where(col(AuditEvent.action).like("payload.%"))


def _ui_json(payloads: list[Payload]) -> dict[str, Any]:
    """A request body the way the Temporal UI sends it (proto3 JSON)."""
    from google.protobuf import json_format

    return dict(json_format.MessageToDict(Payloads(payloads=payloads)))


def _from_ui_json(item: dict[str, Any]) -> Payload:
    from google.protobuf import json_format

    return json_format.ParseDict(item, Payload())


@workflow.defn(sandboxed=False)
class EchoWorkflow:
    """Answers its input: a workflow whose only payloads are its input and result."""

    @workflow.run
    async def run(self, text: str) -> str:
        """Echo."""
        return text


async def test_a_payload_under_an_unknown_key_fails_workflow_tasks_and_the_worker_keeps_working(
    temporal_client: Client,
) -> None:
    queue = f"codec-{uuid.uuid4().hex[:8]}"
    foreign = Settings(
        _env_file=None, environment="test", secret_key=SecretStr(TEST_SECRET), payload_key_id="v9"
    )
    foreign_client = Client(
        **(temporal_client.config() | {"data_converter": data_converter(foreign)})
    )
    worker = Worker(temporal_client, task_queue=queue, workflows=[EchoWorkflow])
    running = asyncio.create_task(worker.run())
    try:
        bad = await foreign_client.start_workflow(
            EchoWorkflow.run,
            "secret",
            id=f"codec-bad-{queue}",
            task_queue=queue,
            task_timeout=timedelta(seconds=1),
        )

        async def task_failed() -> Any:
            events = (await bad.fetch_history()).events
            failed = [
                e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]
            return failed[0] if failed else None

        failed_event = await eventually(task_failed, max_wait=20.0, interval=0.1)
        failure = failed_event.workflow_task_failed_event_attributes.failure
        reason = await TEST_CONVERTER.decode_failure(failure)
        good = await temporal_client.execute_workflow(
            EchoWorkflow.run, "fine", id=f"codec-good-{queue}", task_queue=queue
        )

        assert "key id 'v9'" in str(reason)
        assert not running.done()  # the worker survived
        assert good == "fine"
        described = await bad.describe()
        assert described.status is not None
        assert described.status.name == "RUNNING"  # the task is retried, the workflow lives
        await bad.terminate("test over")
    finally:
        await worker.shutdown()
        await asyncio.gather(running, return_exceptions=True)


@workflow.defn(sandboxed=False)
class NoteWorkflow:
    """Waits for one signal and answers its input and the signal: a workflow that lives
    across a deployment."""

    def __init__(self) -> None:
        self._note: str | None = None

    @workflow.run
    async def run(self, text: str) -> str:
        """Both texts, once the signal came."""
        await workflow.wait_condition(lambda: self._note is not None)
        return f"{text}+{self._note}"

    @workflow.signal
    async def note(self, text: str) -> None:
        """The second text."""
        self._note = text


async def test_a_workflow_started_before_encryption_finishes_after_it_and_replays(
    temporal_client: Client,
) -> None:
    queue = f"codec-{uuid.uuid4().hex[:8]}"
    before = Client(**(temporal_client.config() | {"data_converter": pydantic_data_converter}))
    old_worker = Worker(before, task_queue=queue, workflows=[NoteWorkflow])
    async with old_worker:
        handle = await before.start_workflow(
            NoteWorkflow.run, "clear-input", id=f"codec-mig-{queue}", task_queue=queue
        )
        await eventually(lambda: _has_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED))

    async with Worker(temporal_client, task_queue=queue, workflows=[NoteWorkflow]):
        await temporal_client.get_workflow_handle(handle.id).signal(NoteWorkflow.note, "sealed")
        result = await temporal_client.get_workflow_handle(handle.id).result()
    history = await handle.fetch_history()
    found = [(p, where) for event in history.events for p, where in _payloads(event)]
    started = [p for p, where in found if where.startswith("workflow_execution_started")]
    later = [
        p
        for p, where in found
        if where.startswith(("workflow_execution_signaled", "workflow_execution_completed"))
    ]

    assert result == "clear-input+sealed"
    assert [is_encrypted(p) for p in started] == [False]  # written before encryption
    assert len(later) == 2  # the signal and the result, written after
    assert all(is_encrypted(p) for p in later)
    await Replayer(workflows=[NoteWorkflow], data_converter=TEST_CONVERTER).replay_workflow(history)


async def _has_event(handle: Any, event_type: int) -> bool | None:
    events = (await handle.fetch_history()).events
    return True if any(e.event_type == event_type for e in events) else None
