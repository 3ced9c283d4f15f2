"""JWTs: short-lived access tokens, rotating refresh tokens, registration and MFA-challenge tokens.

One algorithm (HS256) is accepted; `iss`, `aud`, `typ` and `exp` are always checked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import jwt

from api.auth.errors import InvalidToken
from models.base import utcnow

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh", "registration", "mfa_challenge"]
# Problem details name the token in our words, never the JWT library's.
_NAMES: dict[TokenType, str] = {
    "access": "access token",
    "refresh": "refresh token",
    "registration": "registration token",
    "mfa_challenge": "MFA challenge token",
}
_ARTICLE: dict[TokenType, str] = {
    "access": "an",
    "refresh": "a",
    "registration": "a",
    "mfa_challenge": "an",
}


@dataclass(frozen=True)
class TokenClaims:
    """The claims we rely on after validation."""

    subject: uuid.UUID
    token_id: uuid.UUID
    type: TokenType
    expires_at: int
    extra: dict[str, Any]


class TokenService:
    """Issues and validates the project's JWTs with one key and one algorithm."""

    def __init__(self, key: bytes, *, issuer: str, audience: str) -> None:
        self._key, self._issuer, self._audience = key, issuer, audience

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

    def verify(self, token: str, expected: TokenType) -> TokenClaims:
        """Validate signature, algorithm, issuer, audience, expiry and type."""
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
        if claims.get("typ") != expected:
            raise InvalidToken(f"this is not {_ARTICLE[expected]} {_NAMES[expected]}")
        try:
            subject, token_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["jti"])
        except (ValueError, TypeError) as exc:
            raise InvalidToken("malformed token claims") from exc
        standard = {"iss", "aud", "sub", "typ", "jti", "iat", "nbf", "exp"}
        extra = {k: v for k, v in claims.items() if k not in standard}
        return TokenClaims(subject, token_id, expected, int(claims["exp"]), extra)
