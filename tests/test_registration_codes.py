"""Verification code lifetime and resending (durations shortened through settings)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.email import MemoryEmailBackend
from core.settings import Settings
from tests.flows import code_in, start_registration, verify_email, wait_for_email


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The per-test settings with the overrides given by indirect parametrization."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return settings.model_copy(update=overrides)


@pytest.mark.parametrize("settings", [{"verification_resend_cooldown_seconds": 0}], indirect=True)
async def test_resend_sends_a_new_code_and_the_old_one_stops_working(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    registration_id = await start_registration(api, "carol@example.com")
    first = code_in(await wait_for_email(outbox, "carol@example.com"))

    resent = await api.post(f"/api/auth/registrations/{registration_id}/resend-code")
    second = code_in(await wait_for_email(outbox, "carol@example.com", count=2))
    old = await verify_email(api, registration_id, first)
    new = await verify_email(api, registration_id, second)

    assert resent.status_code == 202
    assert first != second
    assert old.status_code == 400
    assert new.status_code == 200


@pytest.mark.parametrize("settings", [{"verification_code_ttl_seconds": 0}], indirect=True)
async def test_an_expired_code_is_refused_without_costing_an_attempt(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend
) -> None:
    registration_id = await start_registration(api, "dave@example.com")
    code = code_in(await wait_for_email(outbox, "dave@example.com"))

    response = await verify_email(api, registration_id, code)
    status = (await api.get(f"/api/auth/registrations/{registration_id}")).json()

    assert response.status_code == 400
    assert response.json()["type"].endswith("/verification-code-expired")
    assert status["attempts_left"] == 5
