"""`paf users create` and `paf keys create`: the first user and key of a deployment."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.engine import create_engine, create_session_factory
from db.models import USER_ROLES
from api.roles import ROLE_PERMISSIONS, Permission
from db.users import (
    PasswordPolicyError,
    PasswordTooLongError,
    UserExistsError,
    check_password_policy,
    create_api_key,
    create_user,
    get_user_by_username,
    list_api_keys,
    list_users,
    revoke_api_key,
)
from settings import get_settings

T = TypeVar("T")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit("error: the passwords differ")
    return first


async def _create_user(args: argparse.Namespace, password: str) -> str:
    engine = create_engine(get_settings().database_url, pool_size=1)
    try:
        async with create_session_factory(engine).begin() as session:
            user = await create_user(session, username=args.username, email=args.email, password=password,
                                     role=args.role)
            audit.record(session, "user_created", {"user_id": str(user.id), "username": args.username,
                                                   "role": args.role, "via": "cli"})
            return str(user.id)
    finally:
        await engine.dispose()


async def _create_key(args: argparse.Namespace) -> str:
    engine = create_engine(get_settings().database_url, pool_size=1)
    try:
        async with create_session_factory(engine).begin() as session:
            user = await get_user_by_username(session, args.username)
            if user is None:
                raise SystemExit(f"error: user {args.username!r} not found; create it with `paf users create`")
            scope = sorted(set(args.permissions or []))
            beyond = sorted(set(scope) - ROLE_PERMISSIONS[user.role])
            if beyond:
                raise SystemExit(f"error: the role {user.role} of {args.username!r} lacks {', '.join(beyond)}; "
                                 "a key cannot carry more than its owner")
            expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
            issued = await create_api_key(session, user.id, args.name, permissions=scope, expires_at=expires)
            audit.record(session, "key_created", {"key_id": str(issued.key_id), "user_id": str(user.id),
                                                  "name": args.name, "permissions": scope, "via": "cli"},
                         tenant_id=user.tenant_id)
            return issued.plaintext
    finally:
        await engine.dispose()


async def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(get_settings().database_url, pool_size=1)
    try:
        async with create_session_factory(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on DATABASE_URL, exiting with a readable error when it fails."""
    try:
        return asyncio.run(_with_session(work))
    except (OSError, SQLAlchemyError) as error:
        raise SystemExit(f"error: cannot use the database in DATABASE_URL: {error}") from None


def command_users_list(_args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[tuple[str, str, str, bool, datetime]]:
        return [(u.username, u.email, u.role, u.is_active, u.created_at) for u in await list_users(session)]

    print(f"{'USERNAME':<24} {'ROLE':<10} {'ACTIVE':<7} {'CREATED':<20} EMAIL")
    for username, email, role, active, created in _run(work):
        print(f"{username:<24} {role:<10} {'yes' if active else 'no':<7} {created:%Y-%m-%d %H:%M:%S}  {email}")
    return 0


def command_keys_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[tuple[uuid.UUID, str, bool, datetime | None, datetime | None]]:
        user = await get_user_by_username(session, args.username)
        if user is None:
            raise SystemExit(f"error: user {args.username!r} not found")
        return [(k.id, k.name, k.is_active, k.expires_at, k.last_used) for k in await list_api_keys(session, user.id)]

    print(f"{'KEY ID':<32} {'ACTIVE':<7} {'EXPIRES':<20} {'LAST USED':<20} NAME")
    for key_id, name, active, expires, last_used in _run(work):
        expires_text = f"{expires:%Y-%m-%d %H:%M:%S}" if expires else "never"
        used_text = f"{last_used:%Y-%m-%d %H:%M:%S}" if last_used else "never"
        print(f"{key_id.hex:<32} {'yes' if active else 'no':<7} {expires_text:<20} {used_text:<20} {name}")
    return 0


def command_keys_revoke(args: argparse.Namespace) -> int:
    try:
        key_id = uuid.UUID(hex=args.key_id.removeprefix("pak_").split("_")[0])
    except ValueError:
        print(f"error: {args.key_id!r} is not a key id; take it from `paf keys list`", file=sys.stderr)
        return 2

    async def work(session: AsyncSession) -> bool:
        key = await revoke_api_key(session, key_id)
        if key is not None:
            audit.record(session, "key_revoked", {"key_id": str(key.id), "user_id": str(key.user_id), "via": "cli"})
        return key is not None

    if not _run(work):
        print(f"error: no API key with id {key_id.hex}", file=sys.stderr)
        return 1
    print(f"revoked key {key_id.hex}")
    return 0


def command_users_create(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    try:
        check_password_policy(password, get_settings().password_min_length)
    except PasswordPolicyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        user_id = asyncio.run(_create_user(args, password))
    except (UserExistsError, PasswordTooLongError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as error:
        print(f"error: cannot write to the database in DATABASE_URL: {error}", file=sys.stderr)
        return 1
    print(f"created user {args.username} ({args.role}), id {user_id}")
    return 0


def command_keys_create(args: argparse.Namespace) -> int:
    try:
        key = asyncio.run(_create_key(args))
    except (OSError, SQLAlchemyError) as error:
        print(f"error: cannot write to the database in DATABASE_URL: {error}", file=sys.stderr)
        return 1
    print(key)
    print("Store this key now: it is not shown again.", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = commands.add_parser("users", help="manage users (DATABASE_URL)").add_subparsers(
        dest="users_command", required=True)
    create = users.add_parser("create", help="create a user; the password is asked for twice")
    create.add_argument("username")
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=USER_ROLES, default="user", help="default: %(default)s")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.set_defaults(handler=command_users_create)
    users.add_parser("list", help="list every user").set_defaults(handler=command_users_list)

    keys = commands.add_parser("keys", help="manage API keys (DATABASE_URL)").add_subparsers(
        dest="keys_command", required=True)
    key = keys.add_parser("create", help="create an API key for a user and print it once")
    key.add_argument("username")
    key.add_argument("--name", default="cli", help="a label for the key (default: %(default)s)")
    key.add_argument("--expires-days", type=_positive_int, help="days until the key expires (default: never)")
    key.add_argument("--permission", dest="permissions", action="append", choices=[p.value for p in Permission],
                     help="limit the key to this permission; repeat for more (default: the owner's whole role)")
    key.set_defaults(handler=command_keys_create)

    listed = keys.add_parser("list", help="list a user's API keys (never their secrets)")
    listed.add_argument("username")
    listed.set_defaults(handler=command_keys_list)
    revoke = keys.add_parser("revoke", help="revoke an API key at once")
    revoke.add_argument("key_id", help="the key id from `paf keys list` (a whole key is accepted too)")
    revoke.set_defaults(handler=command_keys_revoke)
