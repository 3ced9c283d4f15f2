"""`HttpPaymentRail` (the provider seam) against the live simulator, plus its error mapping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from activities.providers.rail import (
    NON_RETRYABLE_RAIL_ERRORS,
    HttpPaymentRail,
    PaymentRail,
    RailConflictError,
    RailNotFoundError,
    RailPayment,
    RailRejectedError,
    RailTransientError,
    SubmitPayment,
    parse_rail_event,
    rail_callback_url,
)
from cli.rail import rail_config, run_rail
from core.embedded import free_port
from core.settings import Settings
from tests.rail_support import eventually, running_rail


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    """A live simulator without webhooks (control client; `base_url` is its URL)."""
    async with running_rail(None) as client:
        yield client


@pytest.fixture
async def provider(sim: httpx.AsyncClient) -> AsyncIterator[HttpPaymentRail]:
    """The provider seam pointed at the live simulator."""
    async with HttpPaymentRail(str(sim.base_url), timeout=5.0) as rail:
        yield rail


def _payment(**overrides: object) -> SubmitPayment:
    fields: dict[str, object] = {
        "reference": f"pay-{uuid.uuid4().hex}",
        "amount": 2_500,
        "currency": "EUR",
        "creditor_name": "Ada Lovelace",
        "creditor_iban": "DE89370400440532013000",
        "debtor_account": "VX-0001",
        **overrides,
    }
    return SubmitPayment.model_validate(fields)


async def _settled(rail: PaymentRail, reference: str) -> RailPayment:
    async def probe() -> RailPayment | None:
        payment = await rail.status(reference)
        return payment if payment.is_final else None

    return await eventually(probe)


async def test_submit_status_and_idempotent_resubmit(provider: HttpPaymentRail) -> None:
    rail: PaymentRail = provider  # HttpPaymentRail satisfies the Protocol (checked by mypy)
    payment = _payment()
    submitted = await rail.submit(payment)
    assert (submitted.reference, submitted.status) == (payment.reference, "pending")
    assert not submitted.is_final
    again = await rail.submit(payment)
    assert again.rail_payment_id == submitted.rail_payment_id

    final = await _settled(rail, payment.reference)
    assert final.status == "settled"
    assert final.completed_at is not None
    assert (await rail.submit(payment)).status == "settled"


async def test_rejection_after_acceptance_is_a_status_not_an_error(
    provider: HttpPaymentRail,
) -> None:
    payment = _payment(creditor_name="REJECT me")
    assert (await provider.submit(payment)).status == "pending"
    final = await _settled(provider, payment.reference)
    assert final.status == "rejected"
    assert final.reason


async def test_cancel_then_conflict_after_settlement(
    provider: HttpPaymentRail, sim: httpx.AsyncClient
) -> None:
    await sim.post("/v1/control", json={"settle_delay_seconds": 3600})
    pending = await provider.submit(_payment())
    cancelled = await provider.cancel(pending.rail_payment_id)
    assert cancelled.status == "cancelled"
    assert (await provider.cancel(pending.rail_payment_id)).status == "cancelled"

    settled = await provider.submit(_payment())
    await sim.post(f"/v1/payments/{settled.rail_payment_id}/settle")
    with pytest.raises(RailConflictError) as caught:
        await provider.cancel(settled.rail_payment_id)
    assert not caught.value.retryable
    assert caught.value.status_code == 409
    assert caught.value.payment is not None
    assert caught.value.payment.status == "settled"


async def test_reused_reference_with_another_body_is_a_conflict(
    provider: HttpPaymentRail,
) -> None:
    payment = _payment()
    first = await provider.submit(payment)
    with pytest.raises(RailConflictError) as caught:
        await provider.submit(payment.model_copy(update={"amount": 1}))
    assert caught.value.payment is not None
    assert caught.value.payment.rail_payment_id == first.rail_payment_id


async def test_transient_failures_surface_as_retryable_errors(
    provider: HttpPaymentRail, sim: httpx.AsyncClient
) -> None:
    payment = _payment()
    await sim.post("/v1/control", json={"transient_failure_rate": 1.0})
    with pytest.raises(RailTransientError) as caught:
        await provider.submit(payment)
    assert caught.value.retryable
    assert caught.value.status_code == 503
    with pytest.raises(RailTransientError):
        await provider.status(payment.reference)
    with pytest.raises(RailTransientError):
        await provider.cancel("rp_whatever")

    await sim.post("/v1/control", json={"transient_failure_rate": 0.0})
    with pytest.raises(RailNotFoundError):  # the failed submit recorded nothing
        await provider.status(payment.reference)
    submitted = await provider.submit(payment)
    assert (await provider.status(payment.reference)).rail_payment_id == submitted.rail_payment_id


async def test_unknown_payment_and_invalid_instruction(provider: HttpPaymentRail) -> None:
    with pytest.raises(RailNotFoundError) as missing:
        await provider.status("never-submitted")
    assert not missing.value.retryable
    with pytest.raises(RailNotFoundError):
        await provider.cancel("rp_unknown")
    with pytest.raises(RailRejectedError) as invalid:
        await provider.submit(_payment(creditor_iban="NOT-AN-IBAN"))
    assert invalid.value.status_code == 422
    assert not invalid.value.retryable
    assert invalid.value.problem_type is not None
    assert invalid.value.problem_type.endswith("/validation-error")


async def test_connection_refused_is_transient() -> None:
    async with HttpPaymentRail(f"http://127.0.0.1:{free_port()}", timeout=2.0) as rail:
        with pytest.raises(RailTransientError, match="unreachable"):
            await rail.status("anything")


async def test_timeouts_and_garbled_answers_are_transient() -> None:
    def timing_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow rail", request=request)

    def garbled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy error</html>")

    def bad_gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    def throttled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"detail": "slow down"})

    for handler in (timing_out, garbled, bad_gateway, throttled):
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with HttpPaymentRail("http://rail.invalid", client=client) as rail:
            with pytest.raises(RailTransientError):
                await rail.submit(_payment())


def test_non_retryable_error_names_for_retry_policies() -> None:
    assert set(NON_RETRYABLE_RAIL_ERRORS) == {
        "RailRejectedError",
        "RailConflictError",
        "RailNotFoundError",
    }
    assert "RailTransientError" not in NON_RETRYABLE_RAIL_ERRORS


def test_submit_payment_validates_locally() -> None:
    with pytest.raises(ValidationError):
        _payment(amount=0)
    with pytest.raises(ValidationError):
        _payment(currency="eur")


def test_parse_rail_event_refuses_malformed_bodies() -> None:
    for body in (
        b"not json",
        b'{"type": "payment.settled"}',
        b'{"event_id": "e", "type": "payment.exploded", "rail_payment_id": "r", "reference": "x",'
        b' "status": "settled", "occurred_at": "2026-01-01T00:00:00Z"}',
    ):
        with pytest.raises(ValidationError):
            parse_rail_event(body)


def test_callback_url_and_rail_config_from_settings() -> None:
    settings = Settings(
        _env_file=None, api_public_url="https://bank.example/", rail_reject_rate=0.25
    )
    assert rail_callback_url(settings.api_public_url) == "https://bank.example/api/webhooks/rail"
    config = rail_config(settings)
    assert config.callback_url == "https://bank.example/api/webhooks/rail"
    assert config.reject_rate == 0.25
    assert config.webhook_secret == settings.rail_webhook_secret.get_secret_value()
    assert "webhook_secret" not in repr(config)


async def test_vortex_rail_serves_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        _env_file=None, rail_port=port, rail_settle_delay_seconds=0.01, state_dir=tmp_path
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_rail(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def healthy() -> bool | None:
                try:
                    return (await client.get("/health")).status_code == 200 or None
                except httpx.ConnectError:
                    return None

            assert await eventually(healthy)
            assert (await client.get("/v1/control")).json()["settle_delay_seconds"] == 0.01
    finally:
        stop.set()
        await running
    assert running.done()
    assert running.exception() is None
