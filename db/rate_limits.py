"""Fixed-window request counters in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import RateLimitCounter


@dataclass(frozen=True)
class WindowCount:
    count: int
    seconds_left: float


def _window_start(now: datetime, window_seconds: int) -> datetime:
    epoch_seconds = int(now.timestamp())
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % window_seconds, UTC)


async def uncount_request(session: AsyncSession, key: str) -> None:
    """Take back one request counted for `key`, as when a login attempt turns out to succeed."""
    await session.execute(update(RateLimitCounter).where(RateLimitCounter.key == key)
                          .values(count=func.greatest(RateLimitCounter.count - 1, 0)))


async def count_request(session: AsyncSession, key: str, window_seconds: int) -> WindowCount:
    """Count one request for `key` in the current window and return the window's count so far."""
    now = datetime.now(UTC)
    window_start = _window_start(now, window_seconds)
    statement = insert(RateLimitCounter).values(key=key, window_start=window_start, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[RateLimitCounter.key],
        set_={
            "count": case(
                (RateLimitCounter.window_start == statement.excluded.window_start, RateLimitCounter.count + 1),
                else_=1,
            ),
            "window_start": statement.excluded.window_start,
        },
    ).returning(RateLimitCounter.count)
    count = int((await session.execute(statement)).scalar_one())
    seconds_left = (window_start + timedelta(seconds=window_seconds) - now).total_seconds()
    return WindowCount(count=count, seconds_left=max(seconds_left, 0.0))
