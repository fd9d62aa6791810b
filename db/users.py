"""Users and API keys: creation and verification."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from passlib.context import CryptContext
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


@dataclass(frozen=True)
class IssuedKey:
    key_id: uuid.UUID
    plaintext: str


def hash_password(password: str) -> str:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordTooLongError(f"password is longer than {MAX_PASSWORD_BYTES} UTF-8 bytes")
    return password_context.hash(password)


def _hash_secret(secret: str) -> str:
    # The secret is 256 random bits, so one SHA-256 suffices; a slow hash would only add latency.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_user(
    session: AsyncSession, *, username: str, email: str, password: str, role: str = "user"
) -> User:
    existing = await session.scalar(select(User.id).where((User.username == username) | (User.email == email)))
    if existing is not None:
        raise UserExistsError(f"a user named {username!r} or with email {email!r} already exists")
    user = User(username=username, email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    await session.flush()
    return user


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


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


async def list_users(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.created_at, User.username)))


async def list_api_keys(session: AsyncSession, user_id: uuid.UUID) -> list[APIKey]:
    return list(await session.scalars(select(APIKey).where(APIKey.user_id == user_id).order_by(APIKey.created_at)))


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID) -> APIKey | None:
    """Deactivate the key; return it, or None when no key has this id."""
    key = await session.get(APIKey, key_id)
    if key is not None:
        key.is_active = False
    return key
