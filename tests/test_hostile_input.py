"""Hostile text at the edge: a NUL (or another refused character) in any text the API takes is a
422 problem before anything reaches PostgreSQL or a workflow; signed feeds refuse it as
malformed; passwords of the whole admitted length work; and an activity that fails
deterministically on its input ends its workflow at once instead of retrying forever."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy

from api.app import create_app
from api.auth.registration import RegistrationService
from api.auth.sessions import SessionService
from api.services import Services
from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend
from core.signatures import PROCESSOR_SIGNATURE_HEADER, SIGNATURE_HEADER, sign
from models.identity.tables import User
from models.ledger.payloads import ExternalEntryInput
from models.ledger.tables import Direction, Transaction
from models.payments.tables import WebhookEvent
from models.staff.tables import StaffRole, StaffRoleGrant
from models.transactions.payloads import ExternalTransactionInput
from processorsim import processor_event
from temporal.deterministic import INVALID_ACTIVITY_INPUT
from temporal.errors import application_error
from tests.flows import STRONG_PASSWORD, register_customer
from tests.hostile_support import NOT_TEXT, NUL, Spec
from tests.ledger_support import new_user, open_account
from workflows.external_transaction import RecordExternalTransactionWorkflow

PROBLEM = "application/problem+json"
# 100 characters, 116 bytes in UTF-8: over zxcvbn's 72 and over bcrypt's 72 bytes.
LONG_PASSWORD = (STRONG_PASSWORD + "-ünïcödé-päss" * 6)[:100]


async def _auth(services: Services, user_id: uuid.UUID) -> dict[str, str]:
    pair = await SessionService(services).issue_session(user_id)
    return {"Authorization": f"Bearer {pair.access_token}"}


async def _count(sessions: SessionFactory, table: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_nul_in_any_text_field_or_parameter_of_any_route_is_a_422(
    api: httpx.AsyncClient, services: Services
) -> None:
    user_id = await new_user(services.sessions, "mallory")
    async with transaction(services.sessions) as session:  # staff routes validate for staff
        for role in StaffRole:  # every staff route admits one of them
            session.add(StaffRoleGrant(user_id=user_id, role=role, granted_by="test"))
    access = (await SessionService(services).issue_session(user_id)).access_token
    registration = RegistrationService(services).registration_token(user_id, uuid.uuid4())
    before = await _count(services.sessions, Transaction)
    document = create_app(services.settings, services).openapi()
    spec = Spec(document)
    checked = 0
    for call in spec.injections():
        token = registration if call.path.startswith("/api/auth/mfa/") else access
        answer = await api.request(
            call.method,
            call.url,
            params=call.params,
            json=call.body,
            headers={"Authorization": f"Bearer {token}"} | call.headers,
        )
        assert answer.status_code < 500, call.describe() + " -> " + answer.text
        declared = document["paths"][call.path][call.method.lower()]["responses"]
        assert str(answer.status_code) in declared, call.describe() + " -> undocumented status"
        if answer.status_code >= 400:
            assert PROBLEM in declared[str(answer.status_code)]["content"], call.describe()
        if call.loc[-1] in NOT_TEXT:
            continue
        if call.loc[0] == "header":  # Idempotency-Key: its own problem, not a validation error
            assert answer.status_code in (400, 422), call.describe() + " -> " + answer.text
            continue
        assert answer.status_code == 422, call.describe() + " -> " + answer.text
        assert answer.headers["content-type"] == PROBLEM
        if call.loc[0] != "path":
            locs = [e["loc"] for e in answer.json()["errors"]]
            assert call.loc in locs, f"{call.describe()} -> {locs}"
        checked += 1
    assert checked >= 40  # every body's text fields and the string query parameters
    assert await _count(services.sessions, Transaction) == before


async def test_refused_characters_and_normalisation(
    api: httpx.AsyncClient, services: Services
) -> None:
    user_id = await new_user(services.sessions, "nfc")
    auth = await _auth(services, user_id)
    refused = ["Main\u202eyrev", "half\ud800", "bell\u0007", "c1\u0085"]

    answers = [
        await api.post(  # ASCII JSON: a lone surrogate travels as the escape \\ud800
            "/api/accounts",
            headers=auth | {"content-type": "application/json"},
            content=json.dumps({"currency": "EUR", "name": name}),
        )
        for name in refused
    ]
    decomposed = await api.post(
        "/api/accounts", headers=auth, json={"currency": "EUR", "name": "Cafe\u0301"}
    )

    assert [a.status_code for a in answers] == [422] * len(refused)
    assert decomposed.status_code == 201, decomposed.text
    assert decomposed.json()["name"] == "Caf\u00e9"  # NFC: one code point


async def test_a_manual_entry_with_nul_is_refused_and_starts_no_workflow(
    api: httpx.AsyncClient, services: Services, temporal_client: Client
) -> None:
    user_id = await new_user(services.sessions, "memo")
    account = await open_account(services.sessions, user_id)
    auth = await _auth(services, user_id)
    body = {"account_id": str(account.account_id), "amount": "3.50", "currency": "EUR"}

    answers = [
        await api.post(
            "/api/transactions",
            headers=auth | {"Idempotency-Key": str(uuid.uuid4())},
            json=body | {field: "Bakery\u0000"},
        )
        for field in ("description", "merchant", "counterparty")
    ]
    note = await api.post(
        "/api/transactions",
        headers=auth | {"Idempotency-Key": str(uuid.uuid4())},
        json=body | {"description": "bread\r\n\tand milk"},
    )

    assert [a.status_code for a in answers] == [422, 422, 422]
    assert note.status_code == 201, note.text
    assert note.json()["description"] == "bread\n\tand milk"  # a note keeps its lines
    assert await _count(services.sessions, Transaction) == 1
    started = [
        w
        async for w in temporal_client.list_workflows(
            f"TaskQueue = '{services.settings.task_queue}'"
        )
    ]
    assert started == []


async def test_signed_feeds_refuse_nul_as_malformed_and_book_nothing(
    api: httpx.AsyncClient, services: Services
) -> None:
    user_id = await new_user(services.sessions, "feed")
    account = await open_account(services.sessions, user_id)
    processor_secret = services.settings.processor_webhook_secret.get_secret_value()
    rail_secret = services.settings.rail_webhook_secret.get_secret_value()
    event = processor_event(account.number, "5.00", "EUR").model_dump(mode="json")
    inbound = {
        "event_id": f"evt_{uuid.uuid4().hex}",
        "type": "inbound.received",
        "inbound_id": f"in_{uuid.uuid4().hex}",
        "to_account_number": account.number,
        "amount": 500,
        "currency": "EUR",
        "debtor_name": "Nobody\u0000",
        "debtor_iban": "DE89370400440532013000",
        "reference": "rent",
        "occurred_at": "2024-05-01T12:00:00Z",
    }

    answers = []
    for field in ("description", "merchant", "external_id", "counterparty"):
        raw = json.dumps(event | {field: "Shop\u0000"}).encode()
        answers.append(
            await api.post(
                "/api/processor/events",
                content=raw,
                headers={PROCESSOR_SIGNATURE_HEADER: sign(processor_secret, raw, int(time.time()))},
            )
        )
    raw = json.dumps(inbound).encode()
    rail = await api.post(
        "/api/webhooks/rail",
        content=raw,
        headers={
            SIGNATURE_HEADER: sign(rail_secret, raw, int(time.time())),
            "X-Rail-Event-Id": NUL,
        },
    )

    assert [a.status_code for a in answers] == [400] * 4
    assert all(a.json()["type"].endswith("/malformed-processor-event") for a in answers)
    assert rail.status_code == 400, rail.text
    assert rail.json()["type"].endswith("/malformed-webhook")
    assert await _count(services.sessions, Transaction) == 0
    assert await _count(services.sessions, WebhookEvent) == 0


async def test_passwords_over_72_bytes_work_and_over_128_characters_are_refused_with_the_limit(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, services: Services
) -> None:
    customer = await register_customer(api, outbox, "long@example.com", password=LONG_PASSWORD)
    login = await api.post(
        "/api/auth/login", json={"email": customer.email, "password": LONG_PASSWORD}
    )
    wrong = await api.post(
        "/api/auth/login", json={"email": customer.email, "password": LONG_PASSWORD[:-1] + "?"}
    )
    too_long = "correct-horse-battery-staple-" * 5  # 145 characters
    refused = [
        await api.post(
            "/api/auth/register",
            json={
                "email": "longer@example.com",
                "password": too_long,
                "first_name": "Ada",
                "last_name": "Lovelace",
            },
        ),
        await api.post("/api/auth/login", json={"email": customer.email, "password": too_long}),
    ]

    assert len(LONG_PASSWORD.encode()) > 72
    assert len(LONG_PASSWORD) <= 128
    assert login.json()["type"].endswith("/mfa-required"), login.text
    assert wrong.json()["type"].endswith("/invalid-credentials"), wrong.text
    for answer in refused:
        assert answer.status_code == 422, answer.text
        assert "128" in answer.json()["errors"][0]["msg"]
    assert await _count(services.sessions, User) == 1


async def test_emails_are_one_identity_across_width_and_case(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    customer = await register_customer(api, outbox, "ada@example.com")

    full_width = await api.post(
        "/api/auth/login",
        json={"email": "\uff21\uff24\uff21@EXAMPLE.com", "password": customer.password},
    )

    assert full_width.status_code == 401, full_width.text
    assert full_width.json()["type"].endswith("/mfa-required")


@pytest.mark.parametrize("field", ["description", "merchant"])
async def test_an_activity_refused_by_the_database_fails_its_workflow_at_once(
    services: Services, temporal_client: Client, workers: object, field: str
) -> None:
    user_id = await new_user(services.sessions, "direct")
    account = await open_account(services.sessions, user_id)
    entry = ExternalEntryInput.model_validate(
        {
            "account_id": account.account_id,
            "external_id": f"txn_{uuid.uuid4().hex}",
            "amount": 500,
            "currency": "EUR",
            "direction": Direction.CREDIT,  # no funds needed: the text is what fails
            field: "bypassed the edge\u0000",
        }
    )
    started = time.monotonic()

    with pytest.raises(WorkflowFailureError) as failure:
        await temporal_client.execute_workflow(
            RecordExternalTransactionWorkflow.run,
            ExternalTransactionInput(request=entry, request_hash="h", activity_timeout_seconds=5),
            id=f"hostile-{uuid.uuid4()}",
            task_queue=services.settings.task_queue,
            retry_policy=RetryPolicy(maximum_attempts=1),
            execution_timeout=timedelta(seconds=60),
        )

    cause = application_error(failure.value)
    assert cause is not None
    assert cause.type == INVALID_ACTIVITY_INPUT
    assert cause.non_retryable
    assert time.monotonic() - started < 10  # one attempt, not a retry loop
    assert await _count(services.sessions, Transaction) == 0
