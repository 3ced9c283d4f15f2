"""`vortex watch`: an audited watch token, the same `/ws` as a dashboard, one line per event."""

from __future__ import annotations

import asyncio
import io
import os
import sys

import httpx
import pytest
from redis.asyncio import Redis

from cli.watch import mint_watch_token, watch
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from tests.events_support import until
from tests.flows import Customer, register_customer
from tests.payment_support import audit_actions
from tests.ws_support import live_api, opened, publish, settings, ws_overrides, ws_url

__all__ = ["live_api", "settings", "ws_overrides"]


@pytest.fixture
async def alice(live_api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer."""
    return await register_customer(live_api, outbox, "alice@example.com")


async def _user_id(live_api: httpx.AsyncClient, who: Customer) -> str:
    async with opened(live_api, who.access_token) as (_, ready):
        return str(ready["data"]["user_id"])


async def test_watch_prints_one_line_per_event_and_the_token_is_audited(
    live_api: httpx.AsyncClient,
    alice: Customer,
    settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
) -> None:
    user_id = await _user_id(live_api, alice)
    token = await mint_watch_token(settings, "Alice@Example.com", "demo for the board", "cli:ops")
    audited = await audit_actions(sessions, "ops.watch")
    assert [(a.subject, a.client, a.details["reason"]) for a in audited] == [
        (user_id, "cli:ops", "demo for the board")
    ]
    out = io.StringIO()
    watching = asyncio.create_task(watch(ws_url(live_api), token, out, count=2))

    async def ready() -> bool:
        return " ready " in out.getvalue()

    await until(ready)
    await publish(redis, 1, "transaction.created", user_id, {"amount": 1234})
    await publish(redis, 2, "balance.updated", user_id, {"posted": 1234})
    assert await asyncio.wait_for(watching, 10) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["ready", "transaction.new", "balance.updated"]
    assert f"user.{user_id} #1 " in lines[1]
    assert lines[1].endswith('{"amount":1234}')


async def test_a_watch_token_is_refused_by_the_http_api(
    live_api: httpx.AsyncClient, alice: Customer, settings: Settings
) -> None:
    token = await mint_watch_token(settings, alice.email, "check", "cli:ops")
    answer = await live_api.get("/api/accounts", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


async def test_watch_of_an_unknown_email_mints_nothing(
    live_api: httpx.AsyncClient, settings: Settings, sessions: SessionFactory
) -> None:
    with pytest.raises(LookupError):
        await mint_watch_token(settings, "nobody@example.com", "typo", "cli:ops")
    assert await audit_actions(sessions, "ops.watch") == []


async def test_the_vortex_watch_command_prints_live_events_until_its_count(
    live_api: httpx.AsyncClient,
    alice: Customer,
    settings: Settings,
    database_url: str,
    redis_url: str,
    redis: Redis,
) -> None:
    user_id = await _user_id(live_api, alice)
    env = os.environ | {
        "VORTEX_DATABASE_URL": database_url,
        "VORTEX_REDIS_URL": redis_url,
        "VORTEX_SECRET_KEY": settings.secret_key.get_secret_value(),
        "VORTEX_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "cli.main", "watch", "--email", alice.email]
    command += ["--reason", "demo", "--url", ws_url(live_api), "--count", "1"]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        first = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b" ready " in first
        await publish(redis, 5, "payment.completed", user_id, {"payment_id": "p"})
        event = await asyncio.wait_for(process.stdout.readline(), 30)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert event.split()[1:4] == [b"payment.completed", f"user.{user_id}".encode(), b"#5"]
