"""Schemathesis over the whole API, through the real app with real services and workers, as a
registered customer: no 5xx, and every answer conforms to the OpenAPI document (its status,
content type and schema). Bounded: a few cases per operation, fewer once the budget is spent."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import httpx
import schemathesis
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from sqlalchemy import select
from sqlmodel import col

from api.app import create_app
from api.auth.registration import RegistrationService
from api.auth.sessions import SessionService
from api.services import Services
from core.email import MemoryEmailBackend
from models.identity.tables import User
from tests.flows import Customer, fund, register_customer
from tests.payment_support import GOOD_IBAN
from tests.schema_fuzz_support import (
    BASE_URL,
    Fuzzer,
    FuzzReport,
    Operation,
    cases,
    run_in_thread,
    timed,
)

# A deeper run by hand: VORTEX_TEST_FUZZ_EXAMPLES=400 VORTEX_TEST_FUZZ_SECONDS=900.
EXAMPLES_PER_OPERATION = int(os.environ.get("VORTEX_TEST_FUZZ_EXAMPLES", "60"))
BUDGET_SECONDS = float(os.environ.get("VORTEX_TEST_FUZZ_SECONDS", "40"))
EXAMPLES_WHEN_OVER_BUDGET = 2  # every operation still runs: none is left out silently


def _operation(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    """An operation of the document (a part schemathesis cannot read fails the test)."""
    assert isinstance(result, Ok), result.err()
    return result.ok()


async def _user_id(services: Services, email: str) -> uuid.UUID:
    async with services.reads() as session:
        found = await session.scalar(select(col(User.id)).where(col(User.email) == email))
    assert found is not None
    return found


async def _created(client: httpx.AsyncClient, path: str, who: Customer, body: Any) -> str:
    answer = await client.post(
        path, headers=who.auth | {"Idempotency-Key": str(uuid.uuid4())}, json=body
    )
    assert answer.status_code < 300, answer.text
    data = answer.json()
    return str(data.get("id") or data.get("linked_account_id"))


async def _objects(client: httpx.AsyncClient, who: Customer, services: Services) -> dict[str, str]:
    """Ids the customer owns, one of each kind, so cases reach past the 404 of a made-up id."""
    main = (await client.get("/api/accounts", headers=who.auth)).json()["items"][0]["id"]
    await fund(services.sessions, main, 100_000, "EUR")
    savings = await _created(client, "/api/accounts", who, {"currency": "EUR", "name": "Savings"})
    transfer = {"from_account_id": main, "to_account_id": savings, "currency": "EUR"}
    return {
        "account_id": main,
        "payment_id": await _created(
            client, "/api/payments/transfer", who, transfer | {"amount": "1.00"}
        ),
        "transaction_id": await _created(
            client,
            "/api/transactions",
            who,
            {"account_id": main, "amount": "2.50", "currency": "EUR", "description": "bread"},
        ),
        "method_id": await _created(
            client, "/api/payments/methods", who, {"iban": GOOD_IBAN, "name": "Bo"}
        ),
        "link_id": await _created(
            client,
            f"/api/accounts/{main}/link",
            who,
            {"iban": GOOD_IBAN, "holder_name": "Fuzz Customer"},
        ),
        "registration_id": who.registration_id,
    }


async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(
    services: Services, workers: object, outbox: MemoryEmailBackend
) -> None:
    fast = services.settings.model_copy(
        update={"payment_sync_wait_seconds": 0.5, "processor_wait_seconds": 1.0}
    )
    app = create_app(fast, services)
    # A 500 must reach the checks as an answer, not as an exception in the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        customer = await register_customer(client, outbox, "fuzz@example.com")
        owner = await _user_id(services, customer.email)
        registration = RegistrationService(services).registration_token(
            owner, uuid.UUID(customer.registration_id)
        )
        known = await _objects(client, customer, services)
        schema = schemathesis.openapi.from_dict(app.openapi())
        operations = [op for result in schema.get_all_operations() if (op := _operation(result))]
        report = FuzzReport()
        fuzzer = Fuzzer(client, asyncio.get_running_loop(), report)

        def fuzz_all() -> None:
            for operation in operations:
                # Each operation gets its own session: a fuzzed logout ends only that one.
                access = fuzzer.on_loop(SessionService(services).issue_session(owner)).access_token
                token = registration if operation.path.startswith("/api/auth/mfa/") else access
                over = report.seconds_so_far() > BUDGET_SECONDS
                examples = EXAMPLES_WHEN_OVER_BUDGET if over else EXAMPLES_PER_OPERATION
                strategy = cases(operation, {"Authorization": f"Bearer {token}"}, known)
                fuzzer.run(operation, strategy, examples)

        await run_in_thread(timed(report, fuzz_all))

    print(report.summary())
    assert report.failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in report.failures.items())
    assert set(report.cases) == {op.label for op in operations}, "every operation ran"
    assert not any(status >= 500 for status in report.statuses)
