"""What clients see of the API itself: the request id on every answer (the 500 of an unexpected
error too), and success statuses the OpenAPI document declares."""

from __future__ import annotations

import httpx

from api.app import create_app
from api.services import Services


async def test_an_unexpected_error_is_a_500_problem_with_the_request_id(
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

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("internal-error")
    assert "a bug" not in answer.text
    assert answer.headers.get_list("x-request-id") == ["req-4711"]
    assert ok.headers.get_list("x-request-id") == ["req-4712"]


async def test_the_openapi_document_lists_every_success_status_of_a_transfer(
    services: Services,
) -> None:
    document = create_app(services.settings, services).openapi()

    answers = document["paths"]["/api/payments/transfer"]["post"]["responses"]

    assert {"200", "201", "202"} <= set(answers)
