"""JSON Web Tokens for signed-in users: a short access token and a rotating refresh token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

ALGORITHM = "HS256"
ISSUER = "paf-core-agent"
TokenKind = Literal["access", "refresh"]


class TokenError(ValueError):
    """A malformed, forged, expired or wrong-type token. The message names the reason."""


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def _encode(secret: str, kind: TokenKind, claims: TokenClaims, lifetime: timedelta) -> str:
    now = datetime.now(UTC)
    payload = {
        "iss": ISSUER, "typ": kind, "sub": str(claims.user_id), "sid": str(claims.session_id),
        "jti": str(claims.token_id), "iat": now, "exp": now + lifetime,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def issue_pair(
    secret: str, *, user_id: uuid.UUID, session_id: uuid.UUID, refresh_jti: uuid.UUID,
    access_lifetime: timedelta, refresh_lifetime: timedelta,
) -> TokenPair:
    access = _encode(secret, "access", TokenClaims(user_id, session_id, uuid.uuid4()), access_lifetime)
    refresh = _encode(secret, "refresh", TokenClaims(user_id, session_id, refresh_jti), refresh_lifetime)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=int(access_lifetime.total_seconds()))


def decode(secret: str, token: str, kind: TokenKind) -> TokenClaims:
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                             options={"require": ["exp", "iat", "iss", "sub", "sid", "jti", "typ"]})
    except jwt.ExpiredSignatureError as error:
        hint = "refresh it or log in again" if kind == "access" else "log in again"
        raise TokenError(f"The {kind} token has expired. To continue, {hint}") from error
    except jwt.InvalidTokenError as error:
        raise TokenError(f"Invalid {kind} token ({error}). Send a token from /api/auth/login or an API key"
                         if kind == "access" else f"Invalid refresh token ({error}). Log in again") from error
    if payload.get("typ") != kind:
        raise TokenError(f"Invalid {kind} token: its type is {payload.get('typ')!s}")
    try:
        return TokenClaims(uuid.UUID(str(payload["sub"])), uuid.UUID(str(payload["sid"])),
                           uuid.UUID(str(payload["jti"])))
    except ValueError as error:
        raise TokenError(f"Invalid {kind} token: malformed ids") from error
