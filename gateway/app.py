"""The gateway as a raw ASGI app: route, forward, stream back, shadow-compare.

Raw ASGI rather than a Starlette `StreamingResponse`: the upstream response is closed in a
`finally` around the relay loop, so it is closed exactly once, after the last chunk went to
the client or when the client or upstream failed, never before (the pitfall of closing it
in the handler) and never leaked when the client goes away (a background task would not run).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.types import Receive, Scope, Send

from api.forwarded import forwarded_client
from core.db import asyncpg_dsn
from core.logging import get_logger
from core.settings import Settings
from gateway import shadow
from gateway.headers import (
    REQUEST_ID,
    RawHeaders,
    request_id,
    response_headers,
    traceparent,
    upstream_request_headers,
)
from gateway.proxy import (
    SAFE_METHODS,
    ClientGone,
    RequestBody,
    Upstream,
    UpstreamAnswer,
    UpstreamBroke,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    may_retry,
)
from gateway.routing import BY_USER, Decision, Side, bearer_subject, decide, path_template
from gateway.table import RouteCache

log = get_logger("gateway")

PROBLEM_BASE = "https://vortexcore.dev/problems/"  # as api/problems.py
HEALTH_PATH = "/-/gateway/health"
MAX_SHADOWS_IN_FLIGHT = 256  # copies and comparisons not yet done; past it, no new copies


def _header(headers: RawHeaders, name: bytes) -> str | None:
    for n, v in headers:
        if n.lower() == name:
            return v.decode("latin-1")
    return None


async def _problem(
    send: Send, status: int, slug: str, title: str, detail: str, path: str, rid: str
) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_BASE + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
            "request_id": rid,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID.encode(), rid.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Gateway:
    """The ASGI app. `async with gateway.running():` (or the ASGI lifespan) starts the pools
    and the live routing table."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.upstreams: dict[Side, Upstream] = {}
        self.routes: RouteCache | None = None
        self.pool: asyncpg.Pool | None = None
        self._shadow_tasks: set[asyncio.Task[Any]] = set()
        self.ignored = frozenset(settings.gateway_shadow_ignored_fields)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Open the upstream clients, the database pool and the route cache; close them after."""
        s = self.settings
        dsn = asyncpg_dsn(s.effective_database_url)
        self.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        for side, url in ((Side.LEGACY, s.gateway_legacy_url), (Side.NEW, s.gateway_new_url)):
            self.upstreams[side] = Upstream.create(
                side.value,
                url,
                connect=s.gateway_connect_timeout_seconds,
                read=s.gateway_read_timeout_seconds,
                max_connections=s.gateway_max_connections,
            )
        self.routes = RouteCache(self.pool, dsn, s.gateway_route_ttl_seconds)
        try:
            await self.routes.start()
            yield self
        finally:
            await self.routes.close()
            await self.drain_shadows()
            for upstream in self.upstreams.values():
                await upstream.aclose()
            await self.pool.close()

    async def drain_shadows(self) -> None:
        """Wait for the shadow comparisons in flight (tests, shutdown)."""
        while self._shadow_tasks:
            await asyncio.gather(*list(self._shadow_tasks), return_exceptions=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:  # websockets are not proxied (the new API's /ws is reached directly)
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with self.running():
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: RawHeaders = list(scope["headers"])
        rid = request_id(headers)
        path: str = scope["path"]
        if path == HEALTH_PATH:
            await self._health(send, rid)
            return
        assert self.routes is not None
        method: str = scope["method"]
        peer: str | None = scope["client"][0] if scope.get("client") else None
        route = self.routes.table.match(path)
        by_user = route.mode in BY_USER  # only these modes look at who is asking
        decision = decide(
            route,
            subject=bearer_subject(_header(headers, b"authorization")) if by_user else None,
            client_ip=self._client(peer, headers) if by_user else None,
        )
        if (
            decision.side is Side.LEGACY
            and route.legacy_writes_frozen
            and method not in SAFE_METHODS
        ):
            await _problem(
                send,
                409,
                "legacy-writes-frozen",
                "Legacy writes frozen",
                "this route was cut over; the legacy system takes no more writes",
                path,
                rid,
            )
            return
        up_headers = upstream_request_headers(
            headers,
            client_ip=peer,  # appended to X-Forwarded-For: the hop this gateway received
            scheme=scope.get("scheme", "http"),
            host=_header(headers, b"host"),
            rid=rid,
            trace=traceparent(headers),
        )
        present = _header(headers, b"content-length") not in (None, "0") or (
            _header(headers, b"transfer-encoding") is not None
        )
        body = RequestBody(receive, present=present)
        raw_path: bytes = scope.get("raw_path") or path.encode()
        query: bytes = scope.get("query_string", b"")
        shadow_task: asyncio.Task[shadow.Answer] | None = None
        if (
            decision.shadow
            and method in ("GET", "HEAD")  # a write is never replayed to the new side
            and len(self._shadow_tasks) < MAX_SHADOWS_IN_FLIGHT  # a slow new side sheds copies
        ):
            shadow_task = asyncio.create_task(
                self._fetch(Side.NEW, method, raw_path, query, up_headers)
            )
            self._shadow_tasks.add(shadow_task)
            shadow_task.add_done_callback(self._shadow_tasks.discard)
        upstream = self.upstreams[decision.side]
        try:
            response = await upstream.open(
                method, raw_path, query, up_headers, body, retry=may_retry(method, headers)
            )
        except UpstreamTimeout:
            self._cancel(shadow_task)
            await _problem(
                send,
                504,
                "gateway-timeout",
                "Gateway timeout",
                f"the {upstream.name} service did not answer in time",
                path,
                rid,
            )
            return
        except ClientGone:
            self._cancel(shadow_task)
            return
        except UpstreamUnreachable as exc:
            self._cancel(shadow_task)
            log.warning("upstream unreachable", upstream=upstream.name, error=str(exc))
            await _problem(
                send,
                502,
                "bad-gateway",
                "Bad gateway",
                f"the {upstream.name} service could not be reached",
                path,
                rid,
            )
            return
        kept = await self._relay(response, send, rid, capture=shadow_task is not None)
        if shadow_task is not None and kept is not None:
            self._compare_later(decision, method, path, rid, kept, shadow_task)

    def _client(self, peer: str | None, headers: RawHeaders) -> str | None:
        """The client an anonymous canary is bucketed by: the peer, or the right-most hop of
        X-Forwarded-For that no trusted proxy wrote (`VORTEX_TRUSTED_PROXIES`)."""
        proxies = self.settings.trusted_proxies
        if peer is None or not proxies:
            return peer
        forwarded = [v.decode("latin-1") for n, v in headers if n.lower() == b"x-forwarded-for"]
        return forwarded_client(peer, forwarded, proxies)

    async def _relay(
        self, response: UpstreamAnswer, send: Send, rid: str, *, capture: bool
    ) -> shadow.Answer | None:
        """Stream the upstream answer to the client; close it after, whatever happens."""
        cap = self.settings.gateway_shadow_max_body_bytes
        kept = bytearray()
        complete = True
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": response_headers(response.raw_headers, rid),
                }
            )
            async for chunk in response.chunks():
                if capture and complete:
                    if len(kept) + len(chunk) <= cap:
                        kept += chunk
                    else:
                        complete = False
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except UpstreamBroke as exc:
            # Mid-body: the status is sent; dropping the connection tells the client the body
            # is cut short (its length or chunk framing does not complete).
            log.warning("upstream failed mid-answer", error=str(exc))
            raise
        finally:
            response.close()
        if not capture:
            return None
        return shadow.Answer(
            response.status, response.content_type, bytes(kept) if complete else b"", complete
        )

    async def _fetch(
        self, side: Side, method: str, raw_path: bytes, query: bytes, headers: RawHeaders
    ) -> shadow.Answer:
        """The shadow copy: read the other side's whole answer (up to the cap)."""
        cap = self.settings.gateway_shadow_max_body_bytes
        try:
            response = await self.upstreams[side].open(
                method, raw_path, query, headers, None, retry=False
            )
        except (UpstreamError, ClientGone):
            return shadow.Answer(None)
        kept = bytearray()
        complete = True
        try:
            async for chunk in response.chunks():
                kept += chunk
                if len(kept) > cap:
                    complete = False
                    break
        except UpstreamError:
            return shadow.Answer(None)
        finally:
            response.close()
        return shadow.Answer(
            response.status, response.content_type, bytes(kept) if complete else b"", complete
        )

    def _cancel(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            task.cancel()

    def _compare_later(
        self,
        decision: Decision,
        method: str,
        path: str,
        rid: str,
        legacy: shadow.Answer,
        new_task: asyncio.Task[shadow.Answer],
    ) -> None:
        async def compare() -> None:
            assert self.pool is not None
            new = await new_task
            outcome = shadow.compare(legacy, new, self.ignored)
            try:
                await shadow.record(
                    self.pool,
                    route_prefix=decision.route.prefix,
                    method=method,
                    path_template=path_template(path),
                    legacy=legacy,
                    new=new,
                    outcome=outcome,
                    request_id=rid,
                )
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("shadow diff not recorded", error=str(exc))

        task = asyncio.create_task(compare())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _health(self, send: Send, rid: str) -> None:
        assert self.routes is not None
        body = json.dumps(
            {
                "status": "ok",
                "routes": len(self.routes.table.routes),
                "routes_version": self.routes.table.version,
                "listening": self.routes.listening.is_set(),
                "time": time.time(),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (REQUEST_ID.encode(), rid.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
