"""Users and API keys: creation and verification."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from passlib.context import CryptContext
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import APIKey, User

KEY_PREFIX = "pak"
# Writing last_used on every request would turn each read into a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_PASSWORD_BYTES = 72

password_context = CryptContext(schemes=["bcrypt"], deprecated="auto", bcrypt__rounds=12)


class UserExistsError(ValueError):
    """A user with this username or email already exists."""


class PasswordTooLongError(ValueError):
    """bcrypt reads at most 72 bytes; a longer password is rejected, never truncated."""


class PasswordPolicyError(ValueError):
    """The password does not meet the configured policy."""


class LastAdminError(ValueError):
    """The change would leave no active admin."""


@dataclass(frozen=True)
class IssuedKey:
    key_id: uuid.UUID
    plaintext: str


def hash_password(password: str) -> str:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordTooLongError(f"password is longer than {MAX_PASSWORD_BYTES} UTF-8 bytes")
    return password_context.hash(password)


def check_password_policy(password: str, min_length: int) -> None:
    """Raise PasswordPolicyError naming the rule a password breaks."""
    if len(password) < min_length:
        raise PasswordPolicyError(f"password must be at least {min_length} characters")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise PasswordPolicyError(f"password must be at most {MAX_PASSWORD_BYTES} UTF-8 bytes, bcrypt's limit")


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password in a thread, since bcrypt takes a quarter of a second.

    With no hash (no such user) a dummy hash is checked instead, so the check
    takes as long as for a real user.
    """
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES or "\x00" in password:
        # No stored password can match, but a dummy is verified so that the timing stays the same.
        password_hash = None
    if password_hash is None:
        await asyncio.to_thread(password_context.dummy_verify)
        return False
    return await asyncio.to_thread(password_context.verify, password, password_hash)


def _hash_secret(secret: str) -> str:
    # The secret is 256 random bits, so one SHA-256 suffices; a slow hash would only add latency.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_user(
    session: AsyncSession, *, username: str, email: str, password: str, role: str = "user"
) -> User:
    # Names and emails are stored in lower case, so `Frank` and `frank` are one user.
    username, email = username.lower(), email.lower()
    existing = await session.scalar(select(User.id).where(
        (func.lower(User.username) == username) | (func.lower(User.email) == email)))
    if existing is not None:
        raise UserExistsError(f"a user named {username!r} or with email {email!r} already exists")
    password_hash = await asyncio.to_thread(hash_password, password)
    user = User(username=username, email=email, password_hash=password_hash, role=role)
    session.add(user)
    await session.flush()
    # Load the server-side defaults (id, created_at) now, because an async session cannot load them lazily.
    await session.refresh(user)
    return user


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.username) == username.lower()))


async def authenticate(
    session_factory: async_sessionmaker[AsyncSession], username: str, password: str
) -> tuple[User | None, str]:
    """Return the user whose credentials these are, or None and the reason for the audit log.

    Every path checks one bcrypt hash, so the time taken does not tell whether
    the username exists. No connection is held during the check, so a flood of
    logins cannot empty the pool.
    """
    async with session_factory() as session:
        user = await get_user_by_username(session, username)
    if not await verify_password(password, user.password_hash if user else None):
        return None, "unknown_user" if user is None else "wrong_password"
    assert user is not None
    if not user.is_active:
        return None, "inactive"
    return user, "ok"


async def record_login(session: AsyncSession, user: User, password: str) -> None:
    """Set `last_login`, and rehash a password stored with older bcrypt settings."""
    values: dict[str, object] = {"last_login": datetime.now(UTC)}
    if password_context.needs_update(user.password_hash):
        values["password_hash"] = await asyncio.to_thread(hash_password, password)
    await session.execute(update(User).where(User.id == user.id).values(**values))


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    user.password_hash = await asyncio.to_thread(hash_password, password)


async def update_user(
    session: AsyncSession, user: User, *, role: str | None = None, is_active: bool | None = None,
    email: str | None = None,
) -> dict[str, tuple[object, object]]:
    """Apply the given changes and return each changed field as (old, new).

    Raises LastAdminError rather than leave the system with no active admin,
    and UserExistsError when the email belongs to another user.
    """
    losing_admin = user.role == "admin" and user.is_active and (
        (role is not None and role != "admin") or is_active is False)
    if losing_admin:
        # Locking the admin rows makes two concurrent demotions wait for each other.
        admins = len(list(await session.scalars(
            select(User.id).where(User.role == "admin", User.is_active.is_(True)).with_for_update())))
        if admins <= 1:
            raise LastAdminError("Cannot remove the last active admin. Make another user admin first")
    if email is not None:
        email = email.lower()
    if email is not None and email != user.email:
        owner_id = await session.scalar(select(User.id).where(func.lower(User.email) == email, User.id != user.id))
        if owner_id is not None:
            raise UserExistsError(f"another user has the email {email!r}")
    changes: dict[str, tuple[object, object]] = {}
    for field, value in (("role", role), ("is_active", is_active), ("email", email)):
        if value is not None and getattr(user, field) != value:
            changes[field] = (getattr(user, field), value)
            setattr(user, field, value)
    await session.flush()
    return changes


async def create_api_key(
    session: AsyncSession,
    user_id: uuid.UUID,
    name: str,
    permissions: list[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Store a new key and return its plaintext, which is not kept anywhere."""
    secret = secrets.token_urlsafe(32)
    key = APIKey(
        id=uuid.uuid4(),
        name=name,
        key_hash=_hash_secret(secret),
        user_id=user_id,
        permissions=permissions or [],
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return IssuedKey(key_id=key.id, plaintext=f"{KEY_PREFIX}_{key.id.hex}_{secret}")


def parse_api_key(presented: str) -> tuple[uuid.UUID, str] | None:
    """Split `pak_<key id>_<secret>`; None when the text is not in that form."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 32:
        return None
    try:
        return uuid.UUID(hex=parts[1]), parts[2]
    except ValueError:
        return None


async def verify_api_key(session: AsyncSession, presented: str) -> tuple[User, APIKey] | None:
    """Return the active owner of a valid, unexpired key, and the key, else None.

    One primary-key lookup and a constant-time comparison, so the cost does not
    grow with the number of keys stored.
    """
    parsed = parse_api_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = (
        await session.execute(
            select(APIKey, User).join(User, User.id == APIKey.user_id).where(APIKey.id == key_id)
        )
    ).first()
    if row is None:
        # Compare anyway so a wrong key id costs the same as a wrong secret.
        hmac.compare_digest(_hash_secret(secret), _hash_secret(""))
        return None
    key, user = row
    if not hmac.compare_digest(key.key_hash, _hash_secret(secret)):
        return None
    now = datetime.now(UTC)
    if not key.is_active or not user.is_active or (key.expires_at is not None and key.expires_at <= now):
        return None
    if key.last_used is None or now - key.last_used > LAST_USED_RESOLUTION:
        await session.execute(update(APIKey).where(APIKey.id == key.id).values(last_used=now))
        await session.commit()
    return user, key


async def list_users(session: AsyncSession, limit: int | None = None, offset: int = 0) -> list[User]:
    statement = select(User).order_by(User.created_at, User.username).offset(offset).limit(limit)
    return list(await session.scalars(statement))


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> APIKey | None:
    return await session.get(APIKey, key_id)


async def list_api_keys(session: AsyncSession, user_id: uuid.UUID) -> list[APIKey]:
    return list(await session.scalars(select(APIKey).where(APIKey.user_id == user_id).order_by(APIKey.created_at)))


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID) -> APIKey | None:
    """Deactivate the key; return it, or None when no key has this id."""
    key = await session.get(APIKey, key_id)
    if key is not None:
        key.is_active = False
    return key
