"""Sign-in sessions: the server-side record behind each pair of tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuthSession, User


async def open_session(session: AsyncSession, user_id: uuid.UUID, lifetime: timedelta) -> AuthSession:
    auth_session = AuthSession(id=uuid.uuid4(), user_id=user_id, refresh_jti=uuid.uuid4(),
                               expires_at=datetime.now(UTC) + lifetime)
    session.add(auth_session)
    await session.flush()
    return auth_session


async def find_active(session: AsyncSession, session_id: uuid.UUID) -> tuple[AuthSession, User] | None:
    """Return the session and its user while neither has been revoked, expired or deactivated."""
    row = (await session.execute(
        select(AuthSession, User).join(User, User.id == AuthSession.user_id).where(
            AuthSession.id == session_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > datetime.now(UTC),
            User.is_active.is_(True),
        )
    )).first()
    return None if row is None else (row[0], row[1])


async def rotate_refresh(
    session: AsyncSession, session_id: uuid.UUID, presented_jti: uuid.UUID, lifetime: timedelta
) -> tuple[AuthSession, User] | None:
    """Replace the session's refresh token id and extend it, or return None to reject the refresh.

    A refresh token that was already rotated away is being replayed, most
    likely by someone who copied it: the whole session is revoked.
    """
    row = (await session.execute(
        select(AuthSession, User).join(User, User.id == AuthSession.user_id)
        .where(AuthSession.id == session_id).with_for_update(of=AuthSession)
    )).first()
    if row is None:
        return None
    auth_session, user = row[0], row[1]
    now = datetime.now(UTC)
    if auth_session.revoked_at is not None or auth_session.expires_at <= now or not user.is_active:
        return None
    if auth_session.refresh_jti != presented_jti:
        auth_session.revoked_at = now
        return None
    auth_session.refresh_jti = uuid.uuid4()
    auth_session.expires_at = now + lifetime
    return auth_session, user


async def revoke(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(update(AuthSession).where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
                          .values(revoked_at=datetime.now(UTC)))


async def revoke_all(session: AsyncSession, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> None:
    """End every session of the user, except `keep` (the caller's own) when given."""
    statement = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    await session.execute(statement.values(revoked_at=datetime.now(UTC)))


async def delete_expired(session: AsyncSession) -> int:
    result = await session.execute(delete(AuthSession).where(AuthSession.expires_at <= datetime.now(UTC)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
