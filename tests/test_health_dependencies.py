"""`/health/dependencies`: the staff view of every dependency, graded, with the breakers; a
dependency that accepts connections and never answers costs its own timeout, nothing more."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from activities.providers.rail import HttpPaymentRail, RailTransientError
from api.services import Services
from core.breakers import configure_breakers
from core.settings import Settings
from models.staff.tables import StaffRole
from tests.rail_support import running_rail
from tests.security_support import new_member

URL = "/health/dependencies"
NAMES = ["postgresql", "redis", "temporal", "rail", "llm", "smtp"]


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word; yields its port."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep the connection open, answer nothing

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.fixture
async def outside(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Settings for the outside systems: the rail simulator (default) or, with the parameter
    `silent`, a rail and an SMTP server that accept connections and never answer."""
    if getattr(request, "param", "rail") == "silent":
        async with silent_server() as port:
            yield {
                "rail_url": f"http://127.0.0.1:{port}",
                "email_backend": "smtp",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                # generous enough that the core checks answer in time on a loaded CI machine
                "health_check_timeout_seconds": 2.0,
            }
        return
    async with running_rail(None) as rail:
        yield {"rail_url": str(rail.base_url)}


@pytest.fixture
def settings(base_settings: Settings, outside: dict[str, Any]) -> Settings:
    """Per-test settings with this test's outside systems and no health cache."""
    suffix = uuid.uuid4().hex[:8]
    return base_settings.model_copy(
        update={
            "task_queue": f"main-{suffix}",
            "external_task_queue": f"external-{suffix}",
            "health_cache_seconds": 0,
            **outside,
        }
    )


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in report["dependencies"]}


async def test_staff_see_every_dependency_up_with_the_breakers_closed(
    api: httpx.AsyncClient, services: Services
) -> None:
    ops = await new_member(services, "ops@bank.example", StaffRole.OPS)

    answer = await api.get(URL, headers=ops.auth)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    deps = _by_name(report)
    assert [d["name"] for d in report["dependencies"]] == NAMES
    assert {name: d["status"] for name, d in deps.items()} == dict.fromkeys(NAMES, "up")
    assert report["status"] == "up"
    assert deps["llm"]["details"]["endpoint"] == "local engine"
    assert deps["smtp"]["details"]["backend"] == "memory"
    assert deps["rail"]["details"]["http_status"] == 200
    assert all(d["last_check"] and d["response_time_ms"] >= 0 for d in deps.values())
    assert {b["name"]: b["state"] for b in report["breakers"]} == dict.fromkeys(
        ["rail", "llm", "smtp"], "closed"
    )


async def test_customers_and_strangers_get_404(api: httpx.AsyncClient, services: Services) -> None:
    customer = await new_member(services, "cu@example.com", None)
    support = await new_member(services, "support@bank.example", StaffRole.SUPPORT)

    for headers in ({}, customer.auth, support.auth):
        answer = await api.get(URL, headers=headers)
        assert answer.status_code == 404
        assert answer.json()["type"].endswith("/not-found")


@pytest.mark.parametrize("outside", ["silent"], indirect=True)
async def test_a_hanging_dependency_answers_within_its_timeout_and_an_open_breaker_shows(
    api: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    configure_breakers(
        settings.model_copy(update={"breaker_failure_threshold": 1, "breaker_recovery_seconds": 60})
    )
    rail = HttpPaymentRail(settings.rail_url, timeout=0.2)
    with pytest.raises(RailTransientError):  # the rail times out once: its breaker opens
        await rail.status("ref-1")
    await rail.aclose()
    ops = await new_member(services, "ops@bank.example", StaffRole.OPS)

    answer = await api.get(URL, headers=ops.auth, timeout=10)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    deps = _by_name(report)
    for name in ("rail", "smtp"):
        assert deps[name]["status"] == "down"
        assert deps[name]["details"]["error"] == "no answer within 2s"
    assert deps["rail"]["details"]["breaker"] == "open"
    assert {deps[n]["status"] for n in ("postgresql", "redis", "temporal", "llm")} == {"up"}
    assert report["status"] == "degraded"  # the core dependencies answer
    assert [b["state"] for b in report["breakers"] if b["name"] == "rail"] == ["open"]
