"""WebSocket test harness: the real app served live by uvicorn, a real `websockets` client.

Import the fixtures into a test module (`from tests.ws_support import settings, live_api`):
`settings` overrides the conftest one with short WebSocket durations; `live_api` serves the app
(with its hub) on a free loopback port and yields an HTTP client of it. `serve_api` starts more
servers (each with its own hub: a separate API process as far as `/ws` is concerned).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from activities.events.streams import entry_fields
from api.app import create_app
from api.services import Services
from core.settings import Settings
from railsim.server import start_app
from tests.conftest import RunningWorkers

RECV_SECONDS = 10.0  # bound on waiting for one frame (never a timing assertion)
UNTIL_SECONDS = 30.0  # bound on waiting for a wanted frame among heartbeats


@pytest.fixture
def ws_overrides() -> dict[str, Any]:
    """Settings one test changes (`@pytest.mark.parametrize("ws_overrides", [{...}])`)."""
    return {}


@pytest.fixture
def settings(base_settings: Settings, ws_overrides: dict[str, Any]) -> Settings:
    """Per-test task queues and WebSocket durations short enough for tests."""
    suffix = uuid.uuid4().hex[:8]
    return base_settings.model_copy(
        update={
            "task_queue": f"main-{suffix}",
            "external_task_queue": f"external-{suffix}",
            "ws_auth_timeout_seconds": 1.0,
            "ws_heartbeat_seconds": 0.3,
            "ws_idle_timeout_seconds": 30.0,
            "ws_recheck_seconds": 30.0,
            "ws_read_block_ms": 200,
            "ws_max_connections_per_user": 3,
            "ws_queue_size": 64,
            **ws_overrides,
        }
    )


@asynccontextmanager
async def serve_api(services: Services) -> AsyncIterator[str]:
    """The real app served by uvicorn on a free port; yields its base URL."""
    served = await start_app(create_app(services.settings, services))
    try:
        yield served.url
    finally:
        await served.stop()


@pytest.fixture
async def live_api(
    services: Services, workers: RunningWorkers, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client of the app served live, with workers running; `ws_url(client)` is its /ws."""
    async with serve_api(services) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


def ws_url(base: httpx.AsyncClient | str) -> str:
    """The `/ws` URL of a served app."""
    url = str(base.base_url if isinstance(base, httpx.AsyncClient) else base)
    return url.replace("http://", "ws://").rstrip("/") + "/ws"


async def recv(ws: ClientConnection, *, skip_pings: bool = True) -> dict[str, Any]:
    """The next frame; heartbeat pings are answered with `pong` (as a client must) and skipped
    unless asked for."""
    while True:
        async with asyncio.timeout(RECV_SECONDS):
            raw = await ws.recv()
        assert isinstance(raw, str), raw
        body: dict[str, Any] = json.loads(raw)
        if body["type"] != "ping":
            return body
        await ws.send('{"type": "pong"}')
        if not skip_pings:
            return body


async def recv_until(
    ws: ClientConnection, check: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Frames up to and including the first one for which `check` is true."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(UNTIL_SECONDS):
        while not seen or not check(seen[-1]):
            seen.append(await recv(ws))
    return seen


def of_type(kind: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    """A `recv_until` check: a frame of this type whose data has these values."""
    return lambda f: f["type"] == kind and all(f["data"].get(k) == v for k, v in data.items())


async def closed_with(ws: ClientConnection) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; its close code and the frames before it."""
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(UNTIL_SECONDS):  # pings keep coming: bound the whole wait
            while True:
                raw = await ws.recv()
                if isinstance(raw, str):
                    frames.append(json.loads(raw))
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), frames


@asynccontextmanager
async def opened(
    base: httpx.AsyncClient | str,
    token: str | None,
    *,
    last_event_id: str | None = None,
    channels: list[str] | None = None,
    **connect_args: Any,
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A socket authenticated by its first message; yields it and its `ready` frame."""
    async with connect(ws_url(base), **connect_args) as ws:
        message: dict[str, Any] = {"type": "auth", "token": token}
        if last_event_id is not None:
            message["last_event_id"] = last_event_id
        if channels is not None:
            message["channels"] = channels
        await ws.send(json.dumps(message))
        ready = await recv(ws)
        assert ready["type"] == "ready", ready
        yield ws, ready


async def publish(
    redis: Redis,
    event_id: int,
    event_type: str,
    user_id: str | None,
    data: dict[str, Any],
    *,
    stream: str = "transaction.events",
    maxlen: int | None = None,
) -> str:
    """XADD one entry exactly as the relay does (for cases the relay cannot produce on demand:
    re-publishes, trimmed history); returns its entry id."""
    fields = entry_fields(
        event_id, event_type, str(uuid.uuid4()), user_id, json.dumps(data), datetime.now(UTC)
    )
    added = await redis.xadd(stream, fields, maxlen=maxlen, approximate=False)  # type: ignore[arg-type]
    return str(added)
