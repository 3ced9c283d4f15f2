"""JWTs: short-lived access tokens, rotating refresh tokens, registration and MFA-challenge tokens.

One algorithm (HS256) is accepted; `iss`, `aud`, `typ` and `exp` are always checked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

import jwt

from api.auth.errors import InvalidToken
from models.base import utcnow

ALGORITHM = "HS256"
# `watch`: minted by ops for `vortex watch`; opens `/ws` only, every HTTP route refuses it.
TokenType = Literal["access", "refresh", "registration", "mfa_challenge", "watch"]
# Problem details name the token in our words, never the JWT library's.
_NAMES: dict[TokenType, str] = {
    "access": "access token",
    "refresh": "refresh token",
    "registration": "registration token",
    "mfa_challenge": "MFA challenge token",
    "watch": "watch token",
}
_ARTICLE: dict[TokenType, str] = {
    "access": "an",
    "refresh": "a",
    "registration": "a",
    "mfa_challenge": "an",
    "watch": "a",
}


# Verified access tokens kept per process (a few hundred bytes each); the oldest goes first.
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class TokenClaims:
    """The claims we rely on after validation."""

    subject: uuid.UUID
    token_id: uuid.UUID
    type: TokenType
    expires_at: int
    extra: Mapping[str, Any]  # read-only: the claims of an access token are cached


class TokenService:
    """Issues and validates the project's JWTs with one key and one algorithm."""

    def __init__(self, key: bytes, *, issuer: str, audience: str) -> None:
        self._key, self._issuer, self._audience = key, issuer, audience
        self._verified: dict[str, TokenClaims] = {}

    def issue(
        self, subject: uuid.UUID, typ: TokenType, ttl_seconds: int, **extra: Any
    ) -> tuple[str, uuid.UUID]:
        """Sign a token; returns it and its id (jti)."""
        now = utcnow()
        jti = uuid.uuid4()
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(subject),
            "typ": typ,
            "jti": str(jti),
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=ttl_seconds),
            **extra,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), jti

    def verify(self, token: str, expected: TokenType, *also: TokenType) -> TokenClaims:
        """Validate signature, algorithm, issuer, audience, expiry and type (`expected`, or
        one of `also`)."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token, expected)
            if claims.type == "access":
                self._remember(token, claims)
        elif claims.expires_at <= time.time():  # PyJWT's rule: expired at `exp`, no leeway
            raise InvalidToken(f"the {_NAMES[expected]} has expired")
        if claims.type != expected and claims.type not in also:
            raise InvalidToken(f"this is not {_ARTICLE[expected]} {_NAMES[expected]}")
        return claims

    def _remember(self, token: str, claims: TokenClaims) -> None:
        """Keep a verified access token's claims: the outcome of a verification depends only on
        the token's exact text, this service's key and the clock, and expiry is checked again
        on every hit. Revocation is not cached here: callers ask Redis on every request."""
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = claims

    def _decode(self, token: str, expected: TokenType) -> TokenClaims:
        """The full check of a token not seen before (any type)."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken(f"the {_NAMES[expected]} has expired") from exc
        except jwt.PyJWTError as exc:  # the library's text is not for the caller
            raise InvalidToken(f"this is not a valid {_NAMES[expected]}") from exc
        typ = claims.get("typ")
        if typ not in _NAMES:
            raise InvalidToken(f"this is not {_ARTICLE[expected]} {_NAMES[expected]}")
        try:
            subject, token_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["jti"])
        except (ValueError, TypeError) as exc:
            raise InvalidToken("malformed token claims") from exc
        standard = {"iss", "aud", "sub", "typ", "jti", "iat", "nbf", "exp"}
        extra = MappingProxyType({k: v for k, v in claims.items() if k not in standard})
        return TokenClaims(subject, token_id, typ, int(claims["exp"]), extra)
