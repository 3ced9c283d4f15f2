"""`vortex watch --email EMAIL --reason ...`: print a customer's live events, one line each.

For demos and ops. It mints a short-lived `watch` token for the user (ops hold the server
secret), writes that to the hash-chained audit log (`ops.watch`, who and why), and connects to
the API's `/ws` exactly like a dashboard: one code path for live events. A watch token opens
`/ws` only; every HTTP route refuses it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from typing import Any, TextIO

from sqlalchemy import select
from sqlmodel import col
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from api.auth.registration import normalize_email
from api.auth.tokens import TokenService
from core.crypto import crypto_for
from core.db import create_engine, create_session_factory, transaction
from core.settings import Settings
from models.audit import record_audit
from models.identity.tables import User, UserStatus

# Frames shown without --verbose: heartbeats are noise on a terminal.
_QUIET = {"ping", "pong"}


def watch_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vortex watch`."""
    parser.add_argument("--email", required=True, help="the customer whose events to show")
    parser.add_argument("--reason", required=True, help="why (kept in the audit log)")
    parser.add_argument("--url", help="the API's WebSocket URL (default: ws://API_HOST:PORT/ws)")
    parser.add_argument(
        "--channel", action="append", help="a channel to follow (repeatable; default: all)"
    )
    parser.add_argument("--last-event-id", help="resume after this frame id")
    parser.add_argument("--count", type=int, help="exit after this many events")
    parser.add_argument("--verbose", action="store_true", help="also show heartbeats")


async def mint_watch_token(settings: Settings, email: str, reason: str, actor: str) -> str:
    """A `watch` token for the active user with this email, audited; LookupError if none."""
    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        async with transaction(create_session_factory(engine)) as session:
            user = await session.scalar(
                select(User).where(col(User.email) == normalize_email(email))
            )
            if user is None or user.status != UserStatus.ACTIVE:
                raise LookupError(f"no active user with email {email}")
            crypto = crypto_for(settings.secret_key.get_secret_value())
            tokens = TokenService(
                crypto.jwt_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            )
            ttl = settings.ws_watch_token_ttl_seconds
            # A session id of its own: no refresh family, so only disabling the user ends it.
            token, token_id = tokens.issue(user.id, "watch", ttl, sid=f"watch-{uuid.uuid4()}")
            await record_audit(
                session,
                "ops.watch",
                subject=str(user.id),
                client=actor,
                details={"reason": reason, "token_id": str(token_id), "ttl_seconds": ttl},
            )
        return token
    finally:
        await engine.dispose()


def format_frame(body: dict[str, Any]) -> str:
    """One terminal line for a frame: time, type, channel, event id, data."""
    data = json.dumps(body.get("data", {}), separators=(",", ":"), sort_keys=True)
    parts = [str(body.get("ts", "")), str(body.get("type", "?"))]
    if body.get("channel"):
        parts.append(str(body["channel"]))
    if body.get("event_id"):
        parts.append(f"#{body['event_id']}")
    return " ".join([*parts, data])


async def watch(
    url: str,
    token: str,
    out: TextIO,
    *,
    channels: list[str] | None = None,
    last_event_id: str | None = None,
    count: int | None = None,
    verbose: bool = False,
) -> int:
    """Print frames until the socket closes (or `count` events arrived); the exit code."""
    auth: dict[str, Any] = {"type": "auth", "token": token}
    if channels:
        auth["channels"] = channels
    if last_event_id:
        auth["last_event_id"] = last_event_id
    events = 0
    try:
        async with connect(url) as ws:
            await ws.send(json.dumps(auth))
            async for raw in ws:
                body = json.loads(raw)
                if body.get("type") == "ping":
                    await ws.send('{"type": "pong"}')  # or the server closes an idle socket
                if verbose or body.get("type") not in _QUIET:
                    print(format_frame(body), file=out, flush=True)
                events += "event_id" in body
                if count is not None and events >= count:
                    return 0
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        reason = exc.rcvd.reason if exc.rcvd else ""
        print(f"closed by the server: {code} {reason}", file=out, flush=True)
        return 0 if code in (1000, 1001) else 1
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        print(f"cannot connect to {url}: {exc}", file=out, flush=True)
        return 1
    return 0


def run_watch_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `vortex watch`."""
    url = args.url or f"ws://{settings.api_host}:{settings.api_port}/ws"
    actor = f"cli:{getpass.getuser()}"

    async def main() -> int:
        try:
            token = await mint_watch_token(settings, args.email, args.reason, actor)
        except LookupError as exc:
            print(exc, file=sys.stderr)
            return 1
        return await watch(
            url,
            token,
            sys.stdout,
            channels=args.channel,
            last_event_id=args.last_event_id,
            count=args.count,
            verbose=args.verbose,
        )

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
