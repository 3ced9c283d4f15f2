"""FastAPI dependencies: services, client address, current user."""

from __future__ import annotations

import uuid
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import errors as auth_errors
from api.auth.sessions import REVOKED_FAMILY_KEY
from api.auth.tokens import TokenClaims
from api.forwarded import forwarded_client
from api.services import Services
from core import errors
from models.identity.tables import User, UserStatus

bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    """The services built by the app lifespan."""
    return request.app.state.services  # type: ignore[no-any-return]


def client_address(request: Request) -> str:
    """The caller's address for throttling and audit (`X-Forwarded-For` from trusted proxies)."""
    peer = request.client.host if request.client else "unknown"
    proxies = get_services(request).settings.trusted_proxies
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), proxies)


ServicesDep = Annotated[Services, Depends(get_services)]
ClientDep = Annotated[str, Depends(client_address)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise errors.Unauthorized("send an access token as `Authorization: Bearer <token>`")
    return credentials.credentials


async def access_claims(services: ServicesDep, credentials: Credentials) -> TokenClaims:
    """Validate the access token and that its session has not been revoked."""
    claims = services.tokens.verify(_token(credentials), "access")
    if await services.redis.exists(REVOKED_FAMILY_KEY.format(claims.extra.get("sid"))):
        raise auth_errors.InvalidToken("session has been revoked")
    structlog.contextvars.bind_contextvars(user_id=str(claims.subject))
    return claims


AccessClaims = Annotated[TokenClaims, Depends(access_claims)]


async def current_user(services: ServicesDep, claims: AccessClaims) -> User:
    """The active user the access token belongs to."""
    async with services.reads() as session:
        user = await session.get(User, claims.subject)
    if user is None or user.status != UserStatus.ACTIVE:
        raise auth_errors.InvalidToken("account is not active")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def registration_claims(services: ServicesDep, credentials: Credentials) -> TokenClaims:
    """A registration token (issued after email verification) for the MFA setup calls."""
    claims = services.tokens.verify(_token(credentials), "registration")
    try:
        uuid.UUID(str(claims.extra.get("rid")))
    except ValueError as exc:
        raise auth_errors.InvalidToken("malformed registration token") from exc
    return claims


RegistrationClaims = Annotated[TokenClaims, Depends(registration_claims)]
