"""`paf users` and `paf keys`: users and API keys, straight in the database.

These commands need no running API, so they also create the first admin and
recover an account whose password is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from api.roles import ROLE_PERMISSIONS, Permission
from api.schemas import UserCreate
from db import audit, auth_sessions
from db.engine import create_engine, create_session_factory
from db.models import USER_ROLES, User
from db.users import (
    LastAdminError,
    PasswordPolicyError,
    UserExistsError,
    check_password_policy,
    create_api_key,
    create_user,
    get_user_by_username,
    list_api_keys,
    list_users,
    revoke_api_key,
    set_password,
    update_user,
)
from settings import get_settings

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Written by `make run`, so these commands reach the local stack's database with no setting.
DATABASE_URL_FILE = "database-url"


class CommandError(Exception):
    """A failure to report in one line, with the exit status to use."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def database_url() -> str:
    """Return DATABASE_URL, else the local stack's database, else the settings' default."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    stored = Path(os.environ.get("PAF_STATE_DIR", PROJECT_ROOT / ".state")) / DATABASE_URL_FILE
    if stored.exists():
        return stored.read_text().strip()
    return get_settings().database_url


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    try:
        first = getpass.getpass("Password: ")
        repeated = getpass.getpass("Repeat password: ")
    except EOFError:
        raise CommandError("no terminal to read the password from; pipe it in with --password-stdin", 2) from None
    if first != repeated:
        raise CommandError("the passwords differ", 2)
    return first


async def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(database_url(), pool_size=1)
    try:
        async with create_session_factory(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction, turning a database failure into a one-line error."""
    try:
        return asyncio.run(_with_session(work))
    except (OSError, SQLAlchemyError, asyncpg.PostgresError) as error:
        raise CommandError(f"cannot use the database ({error}). Start it with `make run`, or set DATABASE_URL "
                           "to the PostgreSQL URL of the deployment") from None


async def _existing_user(session: AsyncSession, username: str) -> User:
    user = await get_user_by_username(session, username)
    if user is None:
        raise CommandError(f"user {username!r} not found; create it with `paf users create`")
    return user


def _new_password(from_stdin: bool) -> str:
    password = _read_password(from_stdin)
    try:
        check_password_policy(password, get_settings().password_min_length)
    except PasswordPolicyError as error:
        raise CommandError(str(error), 2) from error
    return password


def command_users_create(args: argparse.Namespace) -> int:
    password = _new_password(args.password_stdin)
    # The API's own rules for usernames, emails and roles, so both paths accept the same users.
    try:
        body = UserCreate(username=args.username, email=args.email, password=password, role=args.role)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise CommandError(problems, 2) from None

    async def work(session: AsyncSession) -> uuid.UUID:
        try:
            user = await create_user(session, username=body.username, email=str(body.email), password=password,
                                     role=body.role)
        except UserExistsError as error:
            raise CommandError(str(error), 2) from None
        audit.record(session, "user_created", {"user_id": str(user.id), "username": user.username,
                                               "role": user.role, "via": "cli"})
        return user.id

    user_id = _run(work)
    print(f"created user {body.username} ({body.role}), id {user_id}")
    return 0


def command_users_list(_args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[tuple[str, str, str, bool, datetime]]:
        return [(u.username, u.email, u.role, u.is_active, u.created_at) for u in await list_users(session)]

    rows = _run(work)
    print(f"{'USERNAME':<24} {'ROLE':<10} {'ACTIVE':<7} {'CREATED':<20} EMAIL")
    for username, email, role, active, created in rows:
        print(f"{username:<24} {role:<10} {'yes' if active else 'no':<7} {created:%Y-%m-%d %H:%M:%S}  {email}")
    return 0


def command_users_set_password(args: argparse.Namespace) -> int:
    password = _new_password(args.password_stdin)

    async def work(session: AsyncSession) -> None:
        user = await _existing_user(session, args.username)
        await set_password(session, user, password)
        await auth_sessions.revoke_all(session, user.id)
        audit.record(session, "password_changed", {"user_id": str(user.id), "via": "cli"}, tenant_id=user.tenant_id)

    _run(work)
    print(f"set the password of {args.username}; their sign-ins have ended (API keys keep working)")
    return 0


def command_users_update(args: argparse.Namespace) -> int:
    if args.role is None and args.active is None:
        raise CommandError("nothing to change: pass --role, --activate or --deactivate", 2)

    async def work(session: AsyncSession) -> dict[str, tuple[object, object]]:
        user = await _existing_user(session, args.username)
        try:
            changes = await update_user(session, user, role=args.role, is_active=args.active)
        except LastAdminError as error:
            raise CommandError(str(error), 2) from None
        if "role" in changes:
            audit.record(session, "role_changed", {"user_id": str(user.id), "old_role": changes["role"][0],
                                                   "new_role": changes["role"][1], "changed_by": "cli"})
        if "is_active" in changes:
            event = "user_activated" if user.is_active else "user_deactivated"
            audit.record(session, event, {"user_id": str(user.id), "changed_by": "cli"})
            if not user.is_active:
                await auth_sessions.revoke_all(session, user.id)
        return changes

    changes = _run(work)
    described = ", ".join(f"{name} {old} to {new}" for name, (old, new) in changes.items()) or "nothing changed"
    print(f"updated {args.username}: {described}")
    return 0


def command_keys_create(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> str:
        user = await _existing_user(session, args.username)
        scope = sorted(set(args.permissions or []))
        beyond = sorted(set(scope) - ROLE_PERMISSIONS[user.role])
        if beyond:
            raise CommandError(f"the role {user.role} of {args.username!r} lacks {', '.join(beyond)}; "
                               "a key cannot carry more than its owner", 2)
        expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
        issued = await create_api_key(session, user.id, args.name, permissions=scope, expires_at=expires)
        audit.record(session, "key_created", {"key_id": str(issued.key_id), "user_id": str(user.id),
                                              "name": args.name, "permissions": scope, "via": "cli"},
                     tenant_id=user.tenant_id)
        return issued.plaintext

    print(_run(work))
    print("Store this key now: it is not shown again.", file=sys.stderr)
    return 0


def command_keys_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[tuple[uuid.UUID, str, bool, datetime | None, datetime | None,
                                                        list[str]]]:
        user = await _existing_user(session, args.username)
        return [(k.id, k.name, k.is_active, k.expires_at, k.last_used, list(k.permissions or []))
                for k in await list_api_keys(session, user.id)]

    rows = _run(work)
    print(f"{'KEY ID':<32} {'ACTIVE':<7} {'EXPIRES':<20} {'LAST USED':<20} {'PERMISSIONS':<24} NAME")
    for key_id, name, active, expires, last_used, scope in rows:
        expires_text = f"{expires:%Y-%m-%d %H:%M:%S}" if expires else "never"
        used_text = f"{last_used:%Y-%m-%d %H:%M:%S}" if last_used else "never"
        scope_text = ",".join(scope) or "(whole role)"
        print(f"{key_id.hex:<32} {'yes' if active else 'no':<7} {expires_text:<20} {used_text:<20} "
              f"{scope_text:<24} {name}")
    return 0


def command_keys_revoke(args: argparse.Namespace) -> int:
    try:
        key_id = uuid.UUID(hex=args.key_id.removeprefix("pak_").split("_")[0])
    except ValueError:
        raise CommandError(f"{args.key_id!r} is not a key id; take it from `paf keys list`", 2) from None

    async def work(session: AsyncSession) -> bool:
        key = await revoke_api_key(session, key_id)
        if key is not None:
            audit.record(session, "key_revoked", {"key_id": str(key.id), "user_id": str(key.user_id), "via": "cli"})
        return key is not None

    if not _run(work):
        raise CommandError(f"API key {key_id.hex} not found")
    print(f"revoked key {key_id.hex}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _reporting(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CommandError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.status

    return run


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = commands.add_parser(
        "users", help="manage users (DATABASE_URL, else the database of `make run`)").add_subparsers(
        dest="users_command", required=True)
    create = users.add_parser("create", help="create a user; the password is asked for twice")
    create.add_argument("username", help="3 to 50 letters, digits, '_', '.' or '-'")
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=USER_ROLES, default="user", help="default: %(default)s")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.set_defaults(handler=_reporting(command_users_create))
    users.add_parser("list", help="list every user").set_defaults(handler=_reporting(command_users_list))
    password = users.add_parser("set-password", help="set a user's password and end their sign-ins")
    password.add_argument("username")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    password.set_defaults(handler=_reporting(command_users_set_password))
    update = users.add_parser("update", help="change a user's role, or deactivate or reactivate them")
    update.add_argument("username")
    update.add_argument("--role", choices=USER_ROLES)
    active = update.add_mutually_exclusive_group()
    active.add_argument("--activate", dest="active", action="store_const", const=True)
    active.add_argument("--deactivate", dest="active", action="store_const", const=False,
                        help="the user's keys and sign-ins stop working at once")
    update.set_defaults(handler=_reporting(command_users_update), active=None)

    keys = commands.add_parser(
        "keys", help="manage API keys (DATABASE_URL, else the database of `make run`)").add_subparsers(
        dest="keys_command", required=True)
    key = keys.add_parser("create", help="create an API key for a user and print it once")
    key.add_argument("username")
    key.add_argument("--name", default="cli", help="a label for the key (default: %(default)s)")
    key.add_argument("--expires-days", type=_positive_int, help="days until the key expires (default: never)")
    key.add_argument("--permission", dest="permissions", action="append", choices=[p.value for p in Permission],
                     help="limit the key to this permission; repeat for more (default: the owner's whole role)")
    key.set_defaults(handler=_reporting(command_keys_create))

    listed = keys.add_parser("list", help="list a user's API keys (never their secrets)")
    listed.add_argument("username")
    listed.set_defaults(handler=_reporting(command_keys_list))
    revoke = keys.add_parser("revoke", help="revoke an API key at once")
    revoke.add_argument("key_id", help="the key id from `paf keys list` (a whole key is accepted too)")
    revoke.set_defaults(handler=_reporting(command_keys_revoke))
