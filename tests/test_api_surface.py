"""What clients see of the API itself: the request id on every answer (the 500 of an unexpected
error too), and the success and problem statuses the OpenAPI document declares."""

from __future__ import annotations

import httpx

from api.app import create_app
from api.problems import MEDIA_TYPE as PROBLEM
from api.services import Services
from tests.openapi_support import Answer, AnswerLog, undocumented


async def test_problems_carry_the_request_id_and_a_500_says_nothing_of_the_error(
    services: Services,
) -> None:
    app = create_app(services.settings, services)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise ValueError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.get("/test-only/boom", headers={"X-Request-ID": "req-4711"})
        ok = await client.get("/health", headers={"X-Request-ID": "req-4712"})
        missing = await client.get("/test-only/nothing", headers={"X-Request-ID": "req-4713"})

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("internal-error")
    assert "a bug" not in answer.text
    assert answer.headers.get_list("x-request-id") == ["req-4711"]
    assert answer.json()["request_id"] == "req-4711"
    assert ok.headers.get_list("x-request-id") == ["req-4712"]
    assert (missing.status_code, missing.json()["request_id"]) == (404, "req-4713")


async def test_the_openapi_document_lists_every_success_status_of_a_transfer(
    services: Services,
) -> None:
    document = create_app(services.settings, services).openapi()

    answers = document["paths"]["/api/payments/transfer"]["post"]["responses"]

    assert {"200", "201", "202"} <= set(answers)


async def test_every_operation_documents_its_problem_answers_as_problem_json(
    services: Services,
) -> None:
    document = create_app(services.settings, services).openapi()
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    operations = {
        f"{method.upper()} {path}": op
        for path, item in document["paths"].items()
        for method, op in item.items()
    }

    for name, op in operations.items():
        for status, answer in op["responses"].items():
            if int(status) < 400 or name == "GET /ready":  # /ready's 503 is its JSON report
                continue
            assert answer["content"] == {PROBLEM: {"schema": problem_ref}}, f"{name} {status}"
        assert "500" in op["responses"], name
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance"} <= set(problem["required"])
    assert "errors" in problem["properties"]
    transfer = operations["POST /api/payments/transfer"]["responses"]
    assert {"400", "401", "404", "409", "413", "422", "503"} <= set(transfer)
    assert "Retry-After" in transfer["503"]["headers"]
    assert {"401", "404", "409"} <= set(
        operations["POST /api/payments/{payment_id}/cancel"]["responses"]
    )
    assert "429" in operations["POST /api/accounts/{account_id}/link"]["responses"]
    assert "401" not in operations["POST /api/auth/register"]["responses"]  # no token taken
    assert "404" not in operations["GET /api/accounts"]["responses"]  # names no object
    ready = operations["GET /ready"]["responses"]["503"]["content"]
    assert "application/json" in ready


async def test_an_answer_the_document_does_not_declare_is_caught(services: Services) -> None:
    document = create_app(services.settings, services).openapi()
    cancel = "/api/payments/{payment_id}/cancel"
    log = AnswerLog(
        {
            Answer("POST", cancel, 409, PROBLEM),
            Answer("POST", cancel, 418, PROBLEM),
            Answer("POST", cancel, 404, "application/json"),
            Answer("GET", "/metrics", 200, "text/plain"),  # not in the document: not judged
        }
    )

    assert undocumented(document, log) == [
        f"POST {cancel} -> 404: application/json not declared",
        f"POST {cancel} -> 418: status not declared",
    ]
