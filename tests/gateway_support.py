"""Small upstream apps and servers for the gateway tests: real sockets, so timeouts, streaming
and connection handling are the real ones."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from core.embedded import free_port

CHUNK = 64 * 1024


@dataclass
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body_bytes: int


@dataclass
class Upstream:
    """A tiny service standing for the legacy monolith or the new platform."""

    name: str
    seen: list[Seen] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # merged into JSON answers
    release: asyncio.Event = field(default_factory=asyncio.Event)  # unblocks /slow and /big
    first_chunk: asyncio.Event = field(default_factory=asyncio.Event)  # /upload got data
    big_chunks: int = 200
    url: str = ""

    def app(self) -> Starlette:
        """The ASGI app."""

        async def handle(request: Request) -> Response:
            path = request.url.path
            if path == "/upload":
                total = 0
                async for chunk in request.stream():
                    if chunk and not self.first_chunk.is_set():
                        self.first_chunk.set()
                    total += len(chunk)
                self._record(request, total)
                return JSONResponse({"received": total})
            body = await request.body()
            self._record(request, len(body))
            if path == "/slow":
                await self.release.wait()
            if path == "/big":
                return StreamingResponse(self._big(), media_type="application/octet-stream")
            if path == "/login":
                return JSONResponse({"ok": True}, headers={"set-cookie": "session=ada; Path=/"})
            answer = {
                "side": self.name,
                "id": str(uuid.uuid4()),  # differs on every answer: an ignored field
                "method": request.method,
                "path": path,
                **self.extra,
            }
            return JSONResponse(
                answer,
                headers={
                    "x-upstream": self.name,
                    "keep-alive": "timeout=30",
                    "connection": "x-hop-secret",
                    "x-hop-secret": "must-not-reach-the-client",
                    "proxy-authenticate": "Basic",
                },
            )

        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[StarletteRoute("/{path:path}", handle, methods=methods)])

    async def _big(self) -> AsyncIterator[bytes]:
        yield b"a" * CHUNK
        await self.release.wait()  # the client must see the first chunk before the rest exists
        for _ in range(self.big_chunks):
            yield b"b" * CHUNK

    def _record(self, request: Request, size: int) -> None:
        self.seen.append(
            Seen(request.method, request.url.path, dict(request.headers.items()), size)
        )


@contextlib.asynccontextmanager
async def served(config: uvicorn.Config) -> AsyncIterator[str]:
    """Run a uvicorn server with this config until the block ends; its base URL."""
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free port; its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
        lifespan="auto",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=1,
    )
    async with served(config) as url:
        yield url


@dataclass
class Slammer:
    """A TCP server that accepts connections and closes them at once (an upstream that drops
    requests before answering); counts the connections."""

    connections: int = 0
    url: str = ""


@contextlib.asynccontextmanager
async def slammer() -> AsyncIterator[Slammer]:
    """Start a Slammer on a free port."""
    state = Slammer()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(1), 1)  # let the request start arriving
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def bearer(sub: str) -> dict[str, str]:
    """An Authorization header with an (unsigned) JWT for `sub`: the gateway only reads it."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return {"authorization": f"Bearer {part({'alg': 'HS256'})}.{part({'sub': sub})}.c2ln"}


@dataclass
class GatewayEnv:
    """A running gateway between two test upstreams."""

    legacy: Upstream
    new: Upstream
    gateway: Any  # gateway.app.Gateway
    client: Any  # httpx.AsyncClient on the gateway (ASGI transport)


@contextlib.asynccontextmanager
async def gateway_env(settings: Any, **overrides: Any) -> AsyncIterator[GatewayEnv]:
    """Two upstreams on real sockets and a gateway in front of them (TTL long: only NOTIFY
    refreshes the table within a test)."""
    import httpx

    from gateway.app import Gateway

    legacy, new = Upstream("legacy"), Upstream("new")
    async with serve(legacy.app()) as legacy_url, serve(new.app()) as new_url:
        legacy.url, new.url = legacy_url, new_url
        gw_settings = settings.model_copy(
            update={
                "gateway_legacy_url": legacy_url,
                "gateway_new_url": new_url,
                "gateway_read_timeout_seconds": 2.0,
                "gateway_connect_timeout_seconds": 1.0,
                "gateway_route_ttl_seconds": 3600.0,
                **overrides,
            }
        )
        gateway = Gateway(gw_settings)
        async with gateway.running():
            transport = httpx.ASGITransport(app=gateway, client=("203.0.113.7", 5555))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://shop.example"
            ) as client:
                try:
                    yield GatewayEnv(legacy, new, gateway, client)
                finally:
                    legacy.release.set()
                    new.release.set()


async def put_route(sessions: Any, prefix: str, mode: str, **fields: Any) -> None:
    """Create or change a route through the audited admin path."""
    from core.db import transaction
    from gateway import admin
    from models.gateway.payloads import SetRouteInput

    async with transaction(sessions) as session:
        await admin.set_route(
            session, SetRouteInput(prefix=prefix, mode=mode, actor="test", **fields)
        )


async def wait_until(predicate: Any, what: str, limit: float = 10.0) -> None:
    """Poll an async predicate until true (a deadline, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await predicate():
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)
