"""Roles, key scopes and the permission every route declares."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.permissions import ACCESS_MARKER, ROLE_PERMISSIONS, Permission
from db.models import FlexEvent
from settings import Settings
from tests.conftest import make_caller
from tests.support.scripted_provider import Script

# FastAPI's own documentation routes, which are not APIRoutes and carry no data.
DOCUMENTATION_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def declared_access(dependant: Dependant) -> set[str]:
    found = set()
    for dependency in dependant.dependencies:
        marker = getattr(dependency.call, ACCESS_MARKER, None)
        if marker is not None:
            found.add(marker)
        found |= declared_access(dependency)
    return found


def effective_routes(app: FastAPI) -> Iterator[tuple[str, set[str], Dependant]]:
    """Yield every route with its full dependency tree, including routes of included routers."""
    for route in app.router.routes:
        if isinstance(route, APIRoute):
            yield route.path, set(route.methods), route.dependant
        elif hasattr(route, "effective_candidates"):
            # FastAPI resolves included routers lazily; each candidate carries the router's dependencies too.
            for candidate in route.effective_candidates():
                yield candidate.path, set(candidate.methods or ()), candidate.dependant
        else:
            assert getattr(route, "path", None) in DOCUMENTATION_PATHS, route


def test_every_route_declares_access(settings: Settings) -> None:
    routes = list(effective_routes(create_app(settings)))
    undeclared = [f"{sorted(methods)} {path}" for path, methods, dependant in routes
                  if not declared_access(dependant)]

    assert len(routes) >= 10
    assert undeclared == []


def test_role_permissions_table() -> None:
    assert ROLE_PERMISSIONS["admin"] == frozenset(Permission)
    assert ROLE_PERMISSIONS["developer"] == {"read_conversations", "write_conversations", "manage_workers",
                                             "manage_plugins"}
    assert ROLE_PERMISSIONS["user"] == {"read_conversations", "write_conversations"}
    assert ROLE_PERMISSIONS["readonly"] == {"read_conversations"}


@pytest.mark.parametrize(("role", "can_write"), [("admin", True), ("developer", True), ("user", True),
                                                 ("readonly", False)])
async def test_role_reach(
    http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], script: Script, role: str,
    can_write: bool,
) -> None:
    caller = await make_caller(session_factory, role=role)

    read = await http.get("/api/chat/conversations", headers=caller.headers)
    models = await http.get("/api/chat/models", headers=caller.headers)
    write = await http.post("/api/chat", json={"message": "hi"}, headers=caller.headers)

    assert read.status_code == 200
    assert models.status_code == 200
    assert write.status_code == (200 if can_write else 403), write.text
    if not can_write:
        assert "write_conversations" in write.json()["message"]


async def test_key_scope_narrows_never_widens(
    http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    read_only_key = await make_caller(session_factory, role="user", scope=["read_conversations"])
    widened_key = await make_caller(session_factory, role="readonly", scope=["write_conversations", "admin_access"])

    scoped_read = await http.get("/api/chat/conversations", headers=read_only_key.headers)
    scoped_write = await http.post("/api/chat/stream", json={"message": "hi"}, headers=read_only_key.headers)
    widened_write = await http.post("/api/chat/stream", json={"message": "hi"}, headers=widened_key.headers)
    widened_read = await http.get("/api/chat/conversations", headers=widened_key.headers)

    assert scoped_read.status_code == 200
    assert scoped_write.status_code == 403
    assert widened_write.status_code == 403
    assert widened_read.status_code == 403


async def test_health_needs_no_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/health")

    assert response.status_code == 200


async def test_denied_request_is_audited(
    http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    caller = await make_caller(session_factory, role="readonly")

    denied = await http.post("/api/chat", json={"message": "hi"}, headers=caller.headers)

    assert denied.status_code == 403
    async with session_factory() as session:
        events = (await session.scalars(select(FlexEvent).where(
            FlexEvent.event_type == "auth.denied",
            FlexEvent.payload["user_id"].astext == str(caller.user_id)))).all()
    assert len(events) == 1
    assert events[0].payload["permission"] == "write_conversations"
    assert events[0].payload["path"] == "/api/chat"
    assert caller.api_key.split("_", 2)[2] not in str(events[0].payload)
