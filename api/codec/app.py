"""The codec server: the Temporal UI and CLI decode (and encode) payloads through it.

POST /decode and /encode take and answer `{"payloads": [...]}` in proto3 JSON (the codec server
protocol). Only staff (api/codec/auth.py) are served, and only from the configured UI origins
or from non-browser clients (no Origin header); anything else is a problem+json 401/403 before a
payload is touched. Every served request is audited: who, which namespace, how many payloads.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qs

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from api.codec.auth import (
    SESSION_COOKIE,
    Staff,
    StaffAuthError,
    StaffCredentials,
    authenticate_staff,
    check_ops_token,
    issue_session,
)
from api.problems import problem
from core.logging import get_logger
from temporal.codec import EncryptionCodec, PayloadDecryptionError

log = get_logger("vortex.codec_server")

# (staff, action "payload.decode"/"payload.encode", payload count, namespace) -> recorded
Audit = Callable[[Staff, str, int, str], Awaitable[None]]
MAX_BODY_BYTES = 8 * 1024 * 1024  # a page of history; payloads are at most 2 MiB each
_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


async def log_audit(staff: Staff, action: str, count: int, namespace: str) -> None:
    """The fallback audit: a log line (the CLI wires the hash-chained audit log)."""
    log.info(action, staff=staff.name, via=staff.via, payloads=count, namespace=namespace)


def create_codec_app(
    codec: EncryptionCodec,
    credentials: StaffCredentials,
    ui_origins: Sequence[str],
    audit: Audit = log_audit,
) -> Starlette:
    """The codec server app for these keys, staff credentials and UI origins."""
    allowed = frozenset(origin.rstrip("/") for origin in ui_origins)

    def cors(request: Request, response: Response) -> Response:
        origin = request.headers.get("origin")
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
        return response

    def refuse(request: Request, status: int, type_: str, title: str, detail: str) -> Response:
        return cors(request, problem(status, type_, title, detail, request.url.path))

    async def preflight(request: Request) -> Response:
        if request.headers.get("origin") not in allowed:
            return refuse(request, 403, "forbidden-origin", "Origin not allowed", _FOREIGN)
        response = Response(status_code=204)
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        # The allowed origin may send whatever headers it asks for (UI versions add their
        # own); the staff credential, not a header list, is what guards the data.
        requested = request.headers.get("access-control-request-headers", "")[:1000]
        response.headers["Access-Control-Allow-Headers"] = requested or _ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        return cors(request, response)

    def handler(action: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            origin = request.headers.get("origin")
            if origin is not None and origin not in allowed:
                return refuse(request, 403, "forbidden-origin", "Origin not allowed", _FOREIGN)
            try:
                staff = authenticate_staff(request, credentials)
            except StaffAuthError as exc:
                return refuse(request, 401, "unauthorized", "Authentication required", str(exc))
            body = await _read_capped(request)
            if body is None:
                return refuse(request, 413, "payload-too-large", "Body too large", _TOO_LARGE)
            try:
                payloads = json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
            except json_format.ParseError:
                return refuse(request, 422, "invalid-payloads", "Invalid payloads", _INVALID)
            namespace = request.headers.get("x-namespace", "")[:200]
            await audit(staff, f"payload.{action}", len(payloads.payloads), namespace)
            try:
                if action == "decode":
                    result = await codec.decode(payloads.payloads)
                else:
                    result = await codec.encode(payloads.payloads)
            except PayloadDecryptionError as exc:
                return refuse(request, 422, "undecryptable-payload", "Cannot decrypt", str(exc))
            answer = json_format.MessageToDict(Payloads(payloads=result))
            return cors(request, JSONResponse({"payloads": answer.get("payloads", [])}))

        return serve

    async def login_form(request: Request) -> Response:
        return HTMLResponse(_LOGIN_PAGE.format(message=""))

    async def login(request: Request) -> Response:
        # Only the login page itself posts here: a foreign page must not plant a session.
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            return refuse(request, 403, "forbidden-origin", "Origin not allowed", _FOREIGN)
        body = await _read_capped(request, limit=4096)  # a urlencoded form with one field
        token = parse_qs((body or b"").decode("utf-8", "replace")).get("token", [""])[0]
        try:
            staff = check_ops_token(token, credentials)
        except StaffAuthError:
            page = _LOGIN_PAGE.format(message=html.escape("That is not the ops token."))
            return HTMLResponse(page, status_code=401)
        await audit(staff, "codec.login", 0, "")
        response = RedirectResponse("/login?ok=1", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            issue_session(staff, credentials),
            max_age=credentials.session_ttl_seconds,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
    ]
    for action in ("decode", "encode"):
        routes += [
            Route(f"/{action}", handler(action), methods=["POST"]),
            Route(f"/{action}", preflight, methods=["OPTIONS"]),
        ]
    return Starlette(routes=routes)


async def _read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The body, or None once it passes `limit` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_FOREIGN = "this origin may not call the codec server"
_TOO_LARGE = f"send at most {MAX_BODY_BYTES} bytes per request"
_INVALID = 'expected {"payloads": [...]} in proto3 JSON'
_LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>VortexCore codec server</title></head>
<body><h1>VortexCore codec server</h1>
<p>Staff: enter the ops token to read encrypted payloads in the Temporal UI (then enable
"Include cross-origin credentials" in the UI's codec server settings).</p>
<p>{message}</p>
<form method="post" action="/login">
<input type="password" name="token" autocomplete="off" required>
<button type="submit">Log in</button></form></body></html>
"""
