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


async def deny(request: Request, user: User, message: str, **details: str) -> HTTPException:
    """Write the refusal to the audit log and return the 403 to raise."""
    state: AppState = request.app.state.paf
    async with state.session_factory.begin() as session:
        audit.record(session, "denied", {
            "user_id": str(user.id), "key_id": str(getattr(request.state, "key_id", "") or ""),
            "method": request.method, "path": request.url.path, "reason": message, **details,
        }, tenant_id=user.tenant_id)
    logger.info("denied %s %s to user %s: %s", request.method, request.url.path, user.id, message)
    return HTTPException(status.HTTP_403_FORBIDDEN, message)


# The attribute that marks a dependency as a route's access declaration.
ACCESS_MARKER = "paf_access"


def requires(permission: Permission) -> Any:
    """Declare that a route needs `permission`, so a caller without it gets 403."""

    async def check(request: Request, user: Annotated[User, Depends(get_current_user)]) -> User:
        allowed = granted(user, getattr(request.state, "key_scope", None))
        if permission not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise await deny(request, user, f"permission {permission.value} is required; these credentials "
                                            f"grant: {names}", permission=permission.value)
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
async def require_unscoped(request: Request, user: User, action: str) -> None:
    """Raise 403 for a scoped API key: managing keys and passwords needs the owner's full credentials."""
    if getattr(request.state, "key_scope", None):
        raise await deny(request, user, f"a scoped API key cannot {action}; use an unscoped key or an access "
                                        "token from /api/auth/login")


async def require_grantable(request: Request, user: User, role: str) -> None:
    """Raise 403 unless the caller has every permission of `role`, so no caller grants more than they have."""
    missing = sorted(ROLE_PERMISSIONS[role] - caller_permissions(request, user))
    if missing:
        raise await deny(request, user, f"cannot give the role {role}: these credentials lack "
                                        f"{', '.join(missing)}", role=role)


def sees_everything(request: Request, user: User) -> bool:
    """Return whether the caller may see and manage other users' jobs and runs."""
    return Permission.ADMIN_ACCESS in caller_permissions(request, user)


ConversationReader = Annotated[User, requires(Permission.READ_CONVERSATIONS)]
ConversationWriter = Annotated[User, requires(Permission.WRITE_CONVERSATIONS)]
