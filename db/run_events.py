"""The event stream of a chat turn, kept in `run_events` and announced with NOTIFY.

Writers insert a row and call pg_notify in the same transaction, so a listener
is woken only once the row is visible. Readers select rows after the last id
they sent, which makes a reconnect with Last-Event-ID exact. Events of one turn
are written one at a time (one activity runs at a time), so their ids grow in
commit order and a reader never skips one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import RunEvent

NOTIFY_CHANNEL = "paf_run_events"
FINAL_EVENT = "done"


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event: str
    data: dict[str, Any]


async def append_event(
    session: AsyncSession, request_id: uuid.UUID, event: str, data: dict[str, Any]
) -> int:
    """Add one event to the turn's stream; it becomes visible when `session` commits."""
    event_id = await session.scalar(
        insert(RunEvent).values(request_id=request_id, event=event, data=data).returning(RunEvent.id)
    )
    await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, str(request_id))))
    assert event_id is not None
    return int(event_id)


async def read_events(
    session: AsyncSession, request_id: uuid.UUID, after_id: int = 0, limit: int = 1000
) -> list[StoredEvent]:
    rows = await session.execute(
        select(RunEvent.id, RunEvent.event, RunEvent.data)
        .where(RunEvent.request_id == request_id, RunEvent.id > after_id)
        .order_by(RunEvent.id)
        .limit(limit)
    )
    return [StoredEvent(id=row.id, event=row.event, data=row.data) for row in rows]


async def delete_events(session: AsyncSession, request_id: uuid.UUID) -> None:
    await session.execute(delete(RunEvent).where(RunEvent.request_id == request_id))


async def has_final_event(session: AsyncSession, request_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(RunEvent.id).where(RunEvent.request_id == request_id, RunEvent.event == FINAL_EVENT).limit(1)
    )
    return found is not None


async def delete_expired_events(session: AsyncSession, retention_seconds: float) -> int:
    """Delete the events of every run whose `done` event is older than the retention period."""
    expired = (
        select(RunEvent.request_id)
        .where(RunEvent.event == FINAL_EVENT,
               RunEvent.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, retention_seconds))
    )
    result = await session.execute(delete(RunEvent).where(RunEvent.request_id.in_(expired)))
    return int(result.rowcount or 0)
