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
from db.models import User
from db.users import verify_api_key
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


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.paf
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.session_factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: pak_<id>_<secret>")
bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="paf", X-API-Key'}


async def get_current_user(
    request: Request,
    state: StateDep,
    header_key: Annotated[str | None, Depends(api_key_header)],
    bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """Return the owner of the presented API key; 401 when it is missing or not valid."""
    presented = header_key or (bearer_credentials.credentials if bearer_credentials else None)
    if not presented:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Missing API key: send X-API-Key or Authorization: Bearer",
                            headers=UNAUTHORIZED_HEADERS)
    # A session of its own, returned at once: a dependency's session would stay checked out
    # until a streamed response ends, and a hundred open streams would drain the pool.
    async with state.session_factory() as session:
        verified = await verify_api_key(session, presented)
    if verified is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "Invalid, expired or revoked API key; create a new one with `paf keys create`",
                            headers=UNAUTHORIZED_HEADERS)
    user, key = verified
    request.state.key_scope = list(key.permissions or [])
    request.state.key_id = key.id
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
