"""A live socket: sender, receiver and heartbeat tasks until the connection must close."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from fastapi import WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from api.auth.errors import InvalidToken
from api.auth.tokens import TokenClaims
from api.deps import ensure_not_revoked, verify_access
from api.services import Services
from api.ws import channels as channel_rules
from api.ws.connection import Connection
from api.ws.events import error_frame, frame
from api.ws.hub import Hub
from api.ws.limits import ConnectionLeases, TokenBucket
from api.ws.protocol import BadMessage, CloseCode, channel_list, read_message
from core import errors

log = structlog.get_logger("api.ws")


class LiveSocket:
    """The three loops of one authenticated socket and the state they share."""

    def __init__(
        self,
        websocket: WebSocket,
        hub: Hub,
        conn: Connection,
        claims: TokenClaims,
        services: Services,
        leases: ConnectionLeases,
    ) -> None:
        self.ws, self.hub, self.conn, self.claims = websocket, hub, conn, claims
        self.services, self.settings, self.leases = services, services.settings, leases
        self.bucket = TokenBucket(self.settings.ws_inbound_rate, self.settings.ws_inbound_burst)
        self.last_heard = time.monotonic()

    def reply(self, text: str) -> None:
        """Queue a frame behind the events already queued (one writer: the sender)."""
        try:
            self.conn.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.conn.request_close(CloseCode.SLOW_CONSUMER, "too many undelivered events")

    async def sender(self) -> None:
        """Write queued frames in order; the socket's backpressure holds frames in the queue."""
        while not self.conn.closed.is_set():
            await self.ws.send_text(await self.conn.queue.get())

    async def receiver(self) -> None:
        """Handle client messages until the client leaves or misbehaves."""
        while True:
            event = await self.ws.receive()
            if event["type"] == "websocket.disconnect":
                self.conn.request_close(1000, "client closed")
                return
            self.last_heard = time.monotonic()
            if not self.bucket.take():
                self.conn.request_close(CloseCode.TOO_MANY, "too many messages", "rate-limited")
                return
            try:
                await self.handle(read_message(event, self.settings.ws_max_message_bytes))
            except BadMessage as exc:
                self.reply(error_frame(exc.code, exc.message))

    async def handle(self, body: dict[str, Any]) -> None:
        """One well-formed message."""
        kind = body["type"]
        if kind == "pong":
            return
        if kind == "ping":
            self.reply(frame("pong"))
        elif kind == "subscribe":
            await self.subscribe(channel_list(body, self.settings.ws_max_channels))
        elif kind == "unsubscribe":
            self.hub.unsubscribe(self.conn, channel_list(body, self.settings.ws_max_channels))
            self.reply(frame("subscribed", data={"channels": sorted(self.conn.channels)}))
        elif kind == "auth":
            await self.renew(body.get("token"))
        else:
            raise BadMessage("unknown-type", f"unknown message type {str(kind)[:40]!r}")

    async def subscribe(self, wanted: list[str]) -> None:
        """Add the channels the caller may follow; an error frame for each other one."""
        fresh = [c for c in wanted if c not in self.conn.channels]
        if len(self.conn.channels) + len(fresh) > self.settings.ws_max_channels:
            raise BadMessage("too-many-channels", "unsubscribe from something first")
        granted: list[str] = []
        for channel in fresh:
            if await channel_rules.allowed(self.services.read_pool, self.conn.user_id, channel):
                granted.append(channel)
            else:
                self.reply(
                    error_frame("channel-forbidden", "no such channel for you", channel=channel)
                )
        self.hub.subscribe(self.conn, granted)
        self.reply(frame("subscribed", data={"channels": sorted(self.conn.channels)}))

    async def renew(self, token: object) -> None:
        """A fresh token for the same user extends the socket's life."""
        if not isinstance(token, str):
            raise BadMessage("token-missing", "`auth` needs a token")
        try:
            claims = await verify_access(self.services, token, "watch")
        except InvalidToken as exc:
            raise BadMessage("token-invalid", exc.detail) from None
        if claims.subject != self.conn.user_id:
            raise BadMessage("token-invalid", "the token is for another user")
        self.claims = claims
        self.conn.session_id, self.conn.expires_at = str(claims.extra.get("sid")), claims.expires_at
        self.reply(frame("auth.renewed", data={"expires_at": claims.expires_at}))

    async def heartbeat(self) -> None:
        """Ping, close on idleness or expiry, renew the lease, re-check revocation."""
        st = self.settings
        next_check = time.monotonic() + st.ws_recheck_seconds
        # `closed`, not only cancellation, ends the loop: a cancel that lands while a Redis
        # call's own timeout fires can surface as a Redis timeout error (asyncio.timeout).
        while not self.conn.closed.is_set():
            left = self.conn.expires_at - time.time()
            await asyncio.sleep(max(0.0, min(st.ws_heartbeat_seconds, left)))
            if time.time() >= self.conn.expires_at:
                self.conn.request_close(CloseCode.UNAUTHORIZED, "token expired", "token-expired")
                return
            if time.monotonic() - self.last_heard > st.ws_idle_timeout_seconds:
                self.conn.request_close(
                    CloseCode.IDLE_TIMEOUT, "no message from the client", "idle-timeout"
                )
                return
            self.reply(self.conn.heartbeat(self.hub.positions))
            try:
                await self.leases.acquire(self.conn.user_id, self.conn.id)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + st.ws_recheck_seconds
                    await ensure_not_revoked(self.services, self.claims)
            except InvalidToken:
                self.conn.request_close(CloseCode.REVOKED, "session revoked", "session-revoked")
                return
            except (RedisError, OSError, errors.AppError):
                pass  # Redis is down: the revocation pub/sub is gone too; keep serving


async def serve(
    websocket: WebSocket,
    hub: Hub,
    conn: Connection,
    claims: TokenClaims,
    services: Services,
    leases: ConnectionLeases,
) -> None:
    """Run the socket until something asks it to close (the reason is on `conn`)."""
    live = LiveSocket(websocket, hub, conn, claims, services, leases)
    tasks = [
        asyncio.create_task(live.sender()),
        asyncio.create_task(live.receiver()),
        asyncio.create_task(live.heartbeat()),
        asyncio.create_task(conn.closed.wait()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if isinstance(error, WebSocketDisconnect):
                conn.request_close(1000, "client gone")
            elif error is not None:
                log.error("ws.socket_failed", error=type(error).__name__, user_id=str(conn.user_id))
                conn.request_close(1011, "internal error")
    finally:
        if not conn.closed.is_set():
            conn.request_close(1001, "server shutting down")  # this task was cancelled
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
