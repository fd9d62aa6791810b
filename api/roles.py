"""Roles and the permissions each one grants."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


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


class HasRole(Protocol):
    role: str


def granted(user: HasRole, key_scope: list[str] | None) -> frozenset[Permission]:
    """Return what the caller may do: the role's permissions, narrowed to the key's scope when it has one."""
    allowed = ROLE_PERMISSIONS.get(user.role, frozenset())
    if key_scope:
        allowed = allowed & {Permission(name) for name in key_scope if name in Permission.__members__.values()}
    return allowed
