"""`/ws`: authenticate, subscribe, resume, then serve live frames until the socket must close.

One task per socket runs this; inside it a sender drains the socket's bounded queue, a receiver
handles client messages, and a heartbeat pings, enforces expiry and re-checks revocation.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from api.auth.errors import InvalidToken
from api.auth.tokens import TokenClaims
from api.deps import verify_access
from api.services import Services
from api.ws import channels as channel_rules
from api.ws import cursor
from api.ws.connection import Connection
from api.ws.events import StreamEntry, error_frame, frame
from api.ws.hub import Hub
from api.ws.limits import ConnectionLeases
from api.ws.protocol import (
    SUBPROTOCOL,
    BadMessage,
    CloseCode,
    bearer_from_subprotocols,
    channel_list,
    read_message,
)
from api.ws.serve import serve
from core import errors

router = APIRouter()
log = structlog.get_logger("api.ws")
_CLOSE_TIMEOUT_SECONDS = 5.0  # a client that reads nothing must not hold the task forever
_READY_TIMEOUT_SECONDS = 5.0


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    """Live events for the authenticated user (protocol: docs/websocket.md)."""
    with contextlib.suppress(WebSocketDisconnect):  # the client left: nothing to answer
        await _run(websocket)


async def _run(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    hub: Hub | None = getattr(websocket.app.state, "ws_hub", None)
    offered: list[str] = list(websocket.scope.get("subprotocols", []))
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    if hub is None or not await hub.wait_ready(_READY_TIMEOUT_SECONDS):
        await close(websocket, 1013, "try again later")
        return
    opened = await authenticate(websocket, services, bearer_from_subprotocols(offered))
    if opened is None:
        return
    conn, claims, last_event_id = opened
    settings = services.settings
    leases = ConnectionLeases(
        services.redis, settings.ws_max_connections_per_user, 3 * settings.ws_heartbeat_seconds
    )
    try:
        granted = await leases.acquire(conn.user_id, conn.id)
    except (RedisError, OSError):
        await close(websocket, 1013, "try again later")
        return
    if not granted:
        await reject(websocket, CloseCode.TOO_MANY, "too-many-connections", "too many sockets")
        return
    log.info("ws.opened", user_id=str(conn.user_id), connection=conn.id)
    try:
        await start(websocket, hub, conn, last_event_id, services)
        if not conn.closed.is_set():
            await serve(websocket, hub, conn, claims, services, leases)
        if conn.final_frame is not None:
            await send_bounded(websocket, conn.final_frame)
        await close(websocket, conn.close_code or 1000, conn.close_reason)
    finally:
        hub.unregister(conn)
        log.info("ws.closed", user_id=str(conn.user_id), connection=conn.id, code=conn.close_code)
        with contextlib.suppress(RedisError, OSError):
            await leases.release(conn.user_id, conn.id)


async def authenticate(
    websocket: WebSocket, services: Services, header_token: str | None
) -> tuple[Connection, TokenClaims, Any] | None:
    """Read the `auth` message; a Connection for a valid token, else an error frame and close."""
    settings = services.settings
    try:
        async with asyncio.timeout(settings.ws_auth_timeout_seconds):
            event = await websocket.receive()
    except TimeoutError:
        await reject(websocket, CloseCode.UNAUTHORIZED, "auth-timeout", "send `auth` first")
        return None
    if event["type"] == "websocket.disconnect":
        return None
    try:
        body = read_message(event, settings.ws_max_message_bytes)
        if body["type"] != "auth":
            raise BadMessage("auth-required", "the first message must be `auth`")
        requested = channel_list(body, settings.ws_max_channels) if "channels" in body else None
    except BadMessage as exc:
        await reject(websocket, CloseCode.PROTOCOL_ERROR, exc.code, exc.message)
        return None
    token = body.get("token") or header_token
    if not isinstance(token, str):
        await reject(websocket, CloseCode.UNAUTHORIZED, "token-missing", "no access token")
        return None
    try:
        claims = await verify_access(services, token, "watch")
    except InvalidToken as exc:
        await reject(websocket, CloseCode.UNAUTHORIZED, "token-invalid", exc.detail)
        return None
    except (errors.AppError, RedisError, OSError):  # Redis down: the check cannot be made
        await close(websocket, 1013, "try again later")
        return None
    conn = Connection(
        claims.subject,
        str(claims.extra.get("sid")),
        claims.expires_at,
        settings.ws_queue_size,
        settings.ws_dedupe_window,
    )
    wanted = requested if requested is not None else channel_rules.default_channels(conn.user_id)
    try:
        for channel in wanted:
            if await channel_rules.allowed(services.read_pool, conn.user_id, channel):
                conn.channels.add(channel)
            else:
                await websocket.send_text(forbidden(channel))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        await close(websocket, 1013, "try again later")  # the database is unreachable
        return None
    return conn, claims, body.get("last_event_id")


def forbidden(channel: str) -> str:
    """The one answer for a channel that is not the caller's or does not exist."""
    return error_frame("channel-forbidden", "no such channel for you", channel=channel)


async def start(
    websocket: WebSocket, hub: Hub, conn: Connection, last_event_id: Any, services: Services
) -> None:
    """Register for live entries, then send history after `last_event_id` (or `resync`), then
    what arrived meanwhile; the socket is live afterwards, without gap or repeat."""
    try:
        await _catch_up(websocket, hub, conn, last_event_id, services)
    except TimeoutError:  # the client does not read its history: as if its queue were full
        conn.request_close(CloseCode.SLOW_CONSUMER, "too many undelivered events")
    except (RedisError, OSError):
        conn.request_close(1011, "events unavailable, reconnect with the last id")


async def _catch_up(
    websocket: WebSocket, hub: Hub, conn: Connection, last_event_id: Any, services: Services
) -> None:
    patience = services.settings.ws_idle_timeout_seconds

    async def send(text: str) -> None:
        async with asyncio.timeout(patience):
            await websocket.send_text(text)

    snapshot = hub.register(conn)
    after = cursor.decode(last_event_id) if last_event_id is not None else None
    histories = await _histories(hub, after, services) if after is not None else None
    resumed = after is not None and histories is not None
    conn.cursor = dict(after) if after is not None and resumed else snapshot
    ready = {"user_id": str(conn.user_id), "channels": sorted(conn.channels), "resumed": resumed}
    await send(frame("ready", id_=cursor.encode(conn.cursor), data=ready))
    if last_event_id is not None and not resumed:
        reason = "the last event id is unknown or older than the event retention"
        await send(frame("resync", id_=cursor.encode(conn.cursor), data={"reason": reason}))
    for stream, items in (histories or {}).items():
        for item in items:
            if conn.closed.is_set():
                return
            if isinstance(item, StreamEntry):
                if conn.channels.intersection(item.channels):
                    built = conn.build(item, {})
                    if built is not None:
                        await send(built)
                conn.caught_up_to(stream, cursor.parse_id(item.entry_id))
            else:
                conn.caught_up_to(stream, item)
    while not conn.closed.is_set():
        pending = conn.take_buffer()
        if not pending and conn.live:
            return
        for built in pending:
            await send(built)


async def _histories(
    hub: Hub, after: cursor.Positions, services: Services
) -> dict[str, list[StreamEntry | cursor.StreamId]] | None:
    limit = services.settings.ws_catchup_max_entries
    found: dict[str, list[StreamEntry | cursor.StreamId]] = {}
    for stream, position in after.items():
        items = await hub.history(stream, position, limit)
        if items is None:
            return None
        found[stream] = items
    return found


async def reject(websocket: WebSocket, code: int, error: str, message: str) -> None:
    """An error frame, then close."""
    await send_bounded(websocket, error_frame(error, message))
    await close(websocket, code, message)


async def send_bounded(websocket: WebSocket, text: str) -> None:
    """Send one last frame if the client takes it in time (it may be gone or not reading)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
            await websocket.send_text(text)


async def close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close (bounded in time; a socket the client already closed is left alone)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
            await websocket.close(code, reason[:120])
