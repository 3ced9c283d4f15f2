"""Who may use the codec server: staff holding the ops credential.

Until staff roles exist (issue 10), the staff credential is one ops bearer token
(`VORTEX_CODEC_SERVER_TOKEN`; derived from the master secret when unset, outside production).
A browser cannot add headers to the Temporal UI's codec calls, so staff exchange the token once
for a signed, HttpOnly, SameSite=Strict session cookie (`POST /login`) that the UI sends with
"include cross-origin credentials". `authenticate_staff` is the one check to swap for roles.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from starlette.requests import Request

from core.crypto import derive_key
from core.settings import Settings

SESSION_COOKIE = "vortex_codec_session"


class StaffAuthError(Exception):
    """No valid staff credential: the request is refused with 401."""


@dataclass(frozen=True, slots=True)
class Staff:
    """An authenticated staff caller, as the audit log names it."""

    name: str  # who (today always the holder of the ops token)
    via: str  # how: "bearer" or "session"


@dataclass(frozen=True)
class StaffCredentials:
    """The ops token and the key that signs session cookies."""

    ops_token: str
    session_key: bytes
    session_ttl_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StaffCredentials:
        """Credentials from the settings (production must configure the ops token)."""
        return cls(
            ops_token=ops_token(settings),
            session_key=derive_key(settings.secret_key.get_secret_value(), "vortex/codec-session"),
            session_ttl_seconds=settings.codec_session_ttl_seconds,
        )


def ops_token(settings: Settings) -> str:
    """The configured ops token, or (outside production) one derived from the master secret."""
    if settings.codec_server_token is not None:
        return settings.codec_server_token.get_secret_value()
    if settings.environment == "production":
        raise ValueError("set VORTEX_CODEC_SERVER_TOKEN to run the codec server in production")
    return derive_key(settings.secret_key.get_secret_value(), "vortex/codec-ops-token").hex()


def authenticate_staff(request: Request, credentials: StaffCredentials) -> Staff:
    """The staff caller of a request (bearer ops token or session cookie); else StaffAuthError."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() == "bearer" and _same(token.strip(), credentials.ops_token):
            return Staff("ops", "bearer")
        raise StaffAuthError("the bearer token is not a staff credential")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and (name := _verify_session(cookie, credentials.session_key)) is not None:
        return Staff(name, "session")
    raise StaffAuthError("send the ops token as `Authorization: Bearer <token>` or log in first")


def check_ops_token(token: str, credentials: StaffCredentials) -> Staff:
    """A token typed into the login form; StaffAuthError unless it is the ops token."""
    if not _same(token.strip(), credentials.ops_token):
        raise StaffAuthError("this is not the ops token")
    return Staff("ops", "login")


def issue_session(staff: Staff, credentials: StaffCredentials, now: float | None = None) -> str:
    """A signed session value naming the staff member, valid for the session TTL."""
    expires = int((time.time() if now is None else now) + credentials.session_ttl_seconds)
    body = _b64(json.dumps({"sub": staff.name, "exp": expires}, separators=(",", ":")).encode())
    return f"{body}.{_sign(body, credentials.session_key)}"


def _verify_session(value: str, key: bytes) -> str | None:
    body, _, signature = value.partition(".")
    if not _same(signature, _sign(body, key)):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        name, expires = str(claims["sub"]), int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    return name if expires > time.time() else None


def _sign(body: str, key: bytes) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
