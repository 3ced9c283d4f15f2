"""FastAPI dependencies: services, client address, the caller.

The hot path of every authenticated read: verify the access token (in process), then one Redis
round trip that answers both "was this session revoked" and "was this user disabled". No
database read: a user's status changes only through `api.auth.user_status`, which denies the
user's live tokens in Redis (see docs/decisions.md, fast reads).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from api.auth import errors as auth_errors
from api.auth.tokens import TokenClaims, TokenType
from api.auth.user_status import BLOCKED_USER_KEY, REVOKED_FAMILY_KEY
from api.forwarded import forwarded_client
from api.services import Services
from core import errors
from models.identity.tables import User, UserStatus

bearer = HTTPBearer(auto_error=False)


async def get_services(request: Request) -> Services:
    """The services built by the app lifespan. Every dependency here is `async def`: FastAPI
    runs a plain `def` dependency in a worker thread, a thread hop on every request."""
    return request.app.state.services  # type: ignore[no-any-return]


async def client_address(request: Request) -> str:
    """The caller's address for throttling and audit (`X-Forwarded-For` from trusted proxies)."""
    peer = request.client.host if request.client else "unknown"
    proxies = request.app.state.services.settings.trusted_proxies
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), proxies)


ServicesDep = Annotated[Services, Depends(get_services)]
ClientDep = Annotated[str, Depends(client_address)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise errors.Unauthorized("send an access token as `Authorization: Bearer <token>`")
    return credentials.credentials


async def ensure_not_revoked(services: Services, claims: TokenClaims) -> None:
    """One Redis MGET: raise if the token's session was revoked or its user disabled."""
    revoked, blocked = await services.redis.mget(
        REVOKED_FAMILY_KEY.format(claims.extra.get("sid")), BLOCKED_USER_KEY.format(claims.subject)
    )
    if blocked is not None:
        raise auth_errors.InvalidToken("account is not active")
    if revoked is not None:
        raise auth_errors.InvalidToken("session has been revoked")


async def verify_access(services: Services, token: str, *also: TokenType) -> TokenClaims:
    """Validate an access token (or one of the `also` types) and that it is not revoked; the
    check of every HTTP route and of the WebSocket endpoint."""
    claims = services.tokens.verify(token, "access", *also)
    await ensure_not_revoked(services, claims)
    return claims


async def access_claims(services: ServicesDep, credentials: Credentials) -> TokenClaims:
    """Validate the access token, and that neither its session nor its user was revoked."""
    return await _checked_claims(services, _token(credentials))


async def _checked_claims(services: Services, token: str) -> TokenClaims:
    claims = await verify_access(services, token)
    structlog.contextvars.bind_contextvars(user_id=str(claims.subject))
    return claims


async def caller_from_header(services: Services, authorization: str | None) -> Caller:
    """`current_caller` for a raw `Authorization` header (the fast lane, api/fast_lane.py):
    the bearer parsing of FastAPI's `HTTPBearer(auto_error=False)`, then the same checks."""
    scheme, token = get_authorization_scheme_param(authorization)
    credentials = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
        if authorization and scheme and token and scheme.lower() == "bearer"
        else None
    )
    claims = await _checked_claims(services, _token(credentials))
    return Caller(claims.subject, str(claims.extra.get("sid")))


AccessClaims = Annotated[TokenClaims, Depends(access_claims)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated, active customer a request acts for."""

    id: uuid.UUID
    session_id: str


async def current_caller(services: ServicesDep, credentials: Credentials) -> Caller:
    """Who is calling: all a route needs to scope its queries (no database read). The checks
    of `access_claims`, called directly: one dependency node less on every customer route."""
    claims = await access_claims(services, credentials)
    return Caller(claims.subject, str(claims.extra.get("sid")))


CurrentUser = Annotated[Caller, Depends(current_caller)]


async def current_user_row(services: ServicesDep, claims: AccessClaims) -> User:
    """The caller's user row (a fresh read, status checked again), for the routes that show or
    change the profile or check a second factor."""
    async with services.reads() as session:
        user = await session.get(User, claims.subject)
    if user is None or user.status != UserStatus.ACTIVE:
        raise auth_errors.InvalidToken("account is not active")
    return user


CurrentUserRow = Annotated[User, Depends(current_user_row)]


async def registration_claims(services: ServicesDep, credentials: Credentials) -> TokenClaims:
    """A registration token (issued after email verification) for the MFA setup calls."""
    claims = services.tokens.verify(_token(credentials), "registration")
    try:
        uuid.UUID(str(claims.extra.get("rid")))
    except ValueError as exc:
        raise auth_errors.InvalidToken("malformed registration token") from exc
    return claims


RegistrationClaims = Annotated[TokenClaims, Depends(registration_claims)]
