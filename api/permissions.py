"""Roles, permissions and the per-route permission check.

Every route declares what it needs with `requires(...)` or `public()`; a test
walks the app's routes and fails on any that declares neither.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from api.deps import AppState, get_current_user
from db import audit
from db.models import User


logger = logging.getLogger(__name__)


class Permission(StrEnum):
    READ_CONVERSATIONS = "read_conversations"
    WRITE_CONVERSATIONS = "write_conversations"
    MANAGE_USERS = "manage_users"
    MANAGE_WORKERS = "manage_workers"
    MANAGE_PLUGINS = "manage_plugins"
    ADMIN_ACCESS = "admin_access"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "developer": frozenset({Permission.READ_CONVERSATIONS, Permission.WRITE_CONVERSATIONS,
                           Permission.MANAGE_WORKERS, Permission.MANAGE_PLUGINS}),
    "user": frozenset({Permission.READ_CONVERSATIONS, Permission.WRITE_CONVERSATIONS}),
    "readonly": frozenset({Permission.READ_CONVERSATIONS}),
}

# The attribute that marks a dependency as a route's access declaration.
ACCESS_MARKER = "paf_access"


def granted(user: User, key_scope: list[str] | None) -> frozenset[Permission]:
    """Return what the caller may do: the role's permissions, narrowed to the key's scope when it has one."""
    allowed = ROLE_PERMISSIONS.get(user.role, frozenset())
    if key_scope:
        allowed = allowed & {Permission(name) for name in key_scope if name in Permission.__members__.values()}
    return allowed


def requires(permission: Permission) -> Any:
    """Declare that a route needs `permission`, so a caller without it gets 403."""

    async def check(request: Request, user: Annotated[User, Depends(get_current_user)]) -> User:
        allowed = granted(user, getattr(request.state, "key_scope", None))
        if permission not in allowed:
            state: AppState = request.app.state.paf
            async with state.session_factory.begin() as session:
                audit.record(session, "denied", {
                    "user_id": str(user.id), "key_id": str(getattr(request.state, "key_id", "")),
                    "permission": permission.value, "method": request.method, "path": request.url.path,
                }, tenant_id=user.tenant_id)
            logger.info("denied %s %s to user %s: needs %s", request.method, request.url.path, user.id,
                        permission.value)
            names = ", ".join(sorted(allowed)) or "none"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"permission {permission.value} is required; this key grants: {names}",
            )
        return user

    setattr(check, ACCESS_MARKER, permission.value)
    return Depends(check)


def public() -> Any:
    """Declare that a route needs no credentials."""

    async def allow() -> None:
        return None

    marked: Callable[[], Awaitable[None]] = allow
    setattr(marked, ACCESS_MARKER, "public")
    return Depends(marked)


ConversationReader = Annotated[User, requires(Permission.READ_CONVERSATIONS)]
ConversationWriter = Annotated[User, requires(Permission.WRITE_CONVERSATIONS)]
