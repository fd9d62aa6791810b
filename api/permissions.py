"""Roles, permissions and the per-route permission check.

Every route declares what it needs with `requires(...)` or `public()`; a test
walks the app's routes and fails on any that declares neither.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from api.deps import AppState, get_current_user
from api.roles import ROLE_PERMISSIONS, Permission, granted
from db import audit
from db.models import User


__all__ = ["ROLE_PERMISSIONS", "Permission", "granted", "requires", "authenticated", "public"]

logger = logging.getLogger(__name__)


# The attribute that marks a dependency as a route's access declaration.
ACCESS_MARKER = "paf_access"


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


def authenticated() -> Any:
    """Declare that a route needs valid credentials but no particular permission.

    For the caller's own account: who they are, their password, their keys.
    """

    async def check(user: Annotated[User, Depends(get_current_user)]) -> User:
        return user

    setattr(check, ACCESS_MARKER, "authenticated")
    return Depends(check)


def caller_permissions(request: Request, user: User) -> frozenset[Permission]:
    return granted(user, getattr(request.state, "key_scope", None))


def public() -> Any:
    """Declare that a route needs no credentials."""

    async def allow() -> None:
        return None

    marked: Callable[[], Awaitable[None]] = allow
    setattr(marked, ACCESS_MARKER, "public")
    return Depends(marked)


SignedIn = Annotated[User, authenticated()]
UserManager = Annotated[User, requires(Permission.MANAGE_USERS)]
ConversationReader = Annotated[User, requires(Permission.READ_CONVERSATIONS)]
ConversationWriter = Annotated[User, requires(Permission.WRITE_CONVERSATIONS)]
