"""Dependencies shared by the routes: settings, sessions, Temporal client, caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.events import EventHub
from api.tokens import TokenError, decode
from db import auth_sessions
from db.models import User
from db.users import KEY_PREFIX, verify_api_key
from llm.registry import ProviderRegistry
from settings import Settings


@dataclass
class AppState:
    """Everything the lifespan builds once per process."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    temporal: Client
    providers: ProviderRegistry
    hub: EventHub
    jwt_secret: str


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.paf
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.session_factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: pak_<id>_<secret>")
bearer = HTTPBearer(auto_error=False, description="An access token from /api/auth/login, or an API key")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="paf", X-API-Key'}


def unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers=UNAUTHORIZED_HEADERS)


async def get_current_user(
    request: Request,
    state: StateDep,
    header_key: Annotated[str | None, Depends(api_key_header)],
    bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """Return the caller, from an API key or an access token, or raise 401 when missing or invalid.

    Sets `request.state.key_scope` and `key_id` (API keys) or `auth_session_id`
    (access tokens) for the permission check and the audit log.
    """
    presented = header_key or (bearer_credentials.credentials if bearer_credentials else None)
    if not presented:
        raise unauthorized("Missing credentials: send X-API-Key, or Authorization: Bearer with an API key "
                           "or an access token from /api/auth/login")
    request.state.key_scope = []
    request.state.key_id = None
    request.state.auth_session_id = None
    request.state.key_expires_at = None
    # A session of its own, returned at once: a dependency's session would stay checked out
    # until a streamed response ends, and a hundred open streams would drain the pool.
    # X-API-Key carries only API keys. A bearer token is either kind, and the prefix separates them.
    if header_key or presented.startswith(f"{KEY_PREFIX}_"):
        async with state.session_factory() as session:
            verified = await verify_api_key(session, presented)
        if verified is None:
            raise unauthorized("Invalid, expired or revoked API key, or its user is deactivated. Create a new key with "
                               "`paf keys create` or POST /api/keys")
        user, key = verified
        request.state.key_scope = list(key.permissions or [])
        request.state.key_id = key.id
        request.state.key_expires_at = key.expires_at
        return user
    try:
        claims = decode(state.jwt_secret, presented, "access")
    except TokenError as error:
        raise unauthorized(str(error)) from error
    async with state.session_factory() as session:
        found = await auth_sessions.find_active(session, claims.session_id)
    if found is None or found[1].id != claims.user_id:
        raise unauthorized("This sign-in has ended (logged out, password changed, refresh token replayed or user "
                           "deactivated). Log in again")
    request.state.auth_session_id = claims.session_id
    return found[1]


CurrentUser = Annotated[User, Depends(get_current_user)]
