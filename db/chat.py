"""Reads and writes of conversations, messages and UPEE sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import Conversation, FlexEvent, Message, RunEvent, UPEESession
from db.run_events import append_event


class ConversationNotFoundError(LookupError):
    """No conversation with this id belongs to the caller."""

    def __init__(self, conversation_id: uuid.UUID) -> None:
        super().__init__(f"conversation {conversation_id} not found")
        self.conversation_id = conversation_id


class RunNotFoundError(LookupError):
    """No chat turn with this request id belongs to the caller."""

    def __init__(self, request_id: uuid.UUID) -> None:
        super().__init__(f"run {request_id} not found")
        self.request_id = request_id


class SessionNotFoundError(LookupError):
    """No UPEE session exists for this request id."""

    def __init__(self, request_id: uuid.UUID) -> None:
        super().__init__(f"UPEE session for request {request_id} not found")
        self.request_id = request_id


@dataclass(frozen=True)
class HistoryMessage:
    role: str
    content: str


async def get_owned_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> Conversation:
    """Return the conversation if `user_id` owns it.

    Raises:
        ConversationNotFoundError: it does not exist or belongs to someone else,
            two cases the caller must not be able to tell apart.
    """
    conversation = await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    )
    if conversation is None:
        raise ConversationNotFoundError(conversation_id)
    return conversation


async def get_owned_session(session: AsyncSession, request_id: uuid.UUID, user_id: uuid.UUID) -> UPEESession:
    """Return the turn's UPEE session if `user_id` owns its conversation.

    Raises:
        RunNotFoundError: the turn does not exist or belongs to someone else.
    """
    upee = await session.scalar(
        select(UPEESession)
        .join(Conversation, Conversation.id == UPEESession.conversation_id)
        .where(UPEESession.request_id == request_id, Conversation.user_id == user_id)
    )
    if upee is None:
        raise RunNotFoundError(request_id)
    return upee


async def get_turn_answer(session: AsyncSession, request_id: uuid.UUID) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.request_id == request_id, Message.role == "assistant")
    )


async def list_conversations(
    session: AsyncSession, user_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Conversation], int]:
    total = await session.scalar(select(func.count()).where(Conversation.user_id == user_id))
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


def _turn_order() -> tuple[Any, Any]:
    """Sort keys that put each turn's answer right after its question.

    A queued turn's user message is stored on arrival, before the answers of
    the turns ahead of it, so creation time alone would interleave turns.
    """
    turn_time = func.coalesce(UPEESession.created_at, Message.created_at)
    role_rank = case((Message.role == "assistant", 1), else_=0)
    return turn_time, role_rank


async def list_messages(session: AsyncSession, conversation_id: uuid.UUID) -> list[Message]:
    turn_time, role_rank = _turn_order()
    rows = await session.scalars(
        select(Message)
        .outerjoin(UPEESession, UPEESession.request_id == Message.request_id)
        .where(Message.conversation_id == conversation_id)
        .order_by(turn_time, role_rank, Message.created_at, Message.id)
    )
    return list(rows)


async def delete_conversation(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    """Delete the conversation, its messages and sessions, and the stored stream events of its turns."""
    turns = select(UPEESession.request_id).where(UPEESession.conversation_id == conversation_id)
    await session.execute(delete(RunEvent).where(RunEvent.request_id.in_(turns)))
    await session.execute(delete(Conversation).where(Conversation.id == conversation_id))


# Rows read beyond `limit` so that turn ordering still has every message it needs. NOTE: a
# conversation with more queued turns than this could miss the oldest of them in its history.
HISTORY_SLACK = 50


async def load_history(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    limit: int,
    request_id: uuid.UUID | None = None,
    exclude_message_id: uuid.UUID | None = None,
) -> list[HistoryMessage]:
    """Return the last `limit` completed or cancelled messages up to turn `request_id`, oldest first.

    Messages still streaming or failed are left out, and so are the answer
    being written and the messages of turns queued after `request_id`. Only
    the newest messages are read, through an index, so a long conversation
    costs what a short one does.
    """
    newest = (
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at.desc())
        .limit(limit + HISTORY_SLACK)
        .subquery()
    )
    recent = aliased(Message, newest)
    turn_time = func.coalesce(UPEESession.created_at, recent.created_at)
    role_rank = case((recent.role == "assistant", 1), else_=0)
    query = (
        select(recent.role, recent.content)
        .outerjoin(UPEESession, UPEESession.request_id == recent.request_id)
        .where(recent.status.in_(("completed", "cancelled")))
        .order_by(turn_time.desc(), role_rank.desc(), recent.created_at.desc(), recent.id.desc())
        .limit(limit)
    )
    if request_id is not None:
        current = select(UPEESession.created_at).where(UPEESession.request_id == request_id).scalar_subquery()
        query = query.where(turn_time <= current)
    if exclude_message_id is not None:
        query = query.where(recent.id != exclude_message_id)
    rows = (await session.execute(query)).all()
    return [HistoryMessage(role=row.role, content=row.content) for row in reversed(rows)]


async def get_message_content(session: AsyncSession, message_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Message.content).where(Message.id == message_id))


async def upsert_assistant_message(
    session: AsyncSession,
    *,
    message_id: uuid.UUID,
    conversation_id: uuid.UUID,
    request_id: uuid.UUID,
    content: str,
    status: str,
    metadata: dict[str, Any],
) -> None:
    """Write the turn's answer under a fixed id, so retries and refinements replace it."""
    statement = pg_insert(Message).values(
        id=message_id,
        conversation_id=conversation_id,
        request_id=request_id,
        role="assistant",
        content=content,
        status=status,
        metadata_=metadata,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Message.id],
            set_={"content": statement.excluded.content, "status": statement.excluded.status,
                  "metadata": statement.excluded["metadata"]},
        )
    )
    await session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(updated_at=func.now())
    )


async def set_message_status(
    session: AsyncSession, message_id: uuid.UUID, status: str, extra_metadata: dict[str, Any] | None = None
) -> bool:
    values: dict[str, Any] = {"status": status}
    if extra_metadata:
        values["metadata_"] = Message.metadata_.op("||")(extra_metadata)
    result = await session.execute(update(Message).where(Message.id == message_id).values(**values))
    return bool(result.rowcount)


async def get_phases_data(session: AsyncSession, request_id: uuid.UUID) -> dict[str, Any]:
    """Return the session's phases_data, locking the row until the transaction ends."""
    phases = await session.scalar(
        select(UPEESession.phases_data).where(UPEESession.request_id == request_id).with_for_update()
    )
    if phases is None:
        raise SessionNotFoundError(request_id)
    return dict(phases)


async def record_phase(
    session: AsyncSession,
    request_id: uuid.UUID,
    phase_key: str,
    record: dict[str, Any],
    *,
    source: str,
) -> None:
    """Store one phase's result in phases_data and add its flex event, once per phase key.

    An activity retried after it committed finds its key present and writes no second event.
    """
    phases = await get_phases_data(session, request_id)
    first_write = phase_key not in phases
    phases[phase_key] = record
    await session.execute(
        update(UPEESession).where(UPEESession.request_id == request_id).values(phases_data=phases)
    )
    if first_write:
        session.add(
            FlexEvent(
                event_type=f"upee.phase.{record.get('phase', phase_key)}",
                payload={"request_id": str(request_id), "phase_key": phase_key,
                         "duration_ms": record.get("duration_ms"), "usage": record.get("usage")},
                source=source,
            )
        )


async def set_quality_score(session: AsyncSession, request_id: uuid.UUID, score: float | None) -> None:
    await session.execute(
        update(UPEESession).where(UPEESession.request_id == request_id).values(quality_score=score)
    )


async def set_session_status(session: AsyncSession, request_id: uuid.UUID, status: str) -> None:
    await session.execute(update(UPEESession).where(UPEESession.request_id == request_id).values(status=status))


async def running_turns(session: AsyncSession, conversation_id: uuid.UUID) -> list[uuid.UUID]:
    """Return the request ids of the conversation's running turns, oldest first."""
    rows = await session.scalars(
        select(UPEESession.request_id)
        .where(UPEESession.conversation_id == conversation_id, UPEESession.status == "running")
        .order_by(UPEESession.created_at, UPEESession.id)
    )
    return list(rows)


async def add_turn(
    session: AsyncSession, conversation_id: uuid.UUID, content: str, request_id: uuid.UUID,
    assistant_message_id: uuid.UUID, model: str,
) -> uuid.UUID:
    """Store a turn's user message, session row and first stream event; return the message id."""
    user_message = Message(conversation_id=conversation_id, role="user", content=content, request_id=request_id)
    session.add(user_message)
    session.add(UPEESession(conversation_id=conversation_id, request_id=request_id))
    await session.flush()
    await append_event(session, request_id, "conversation", {
        "conversation_id": str(conversation_id), "request_id": str(request_id),
        "user_message_id": str(user_message.id), "message_id": str(assistant_message_id), "model": model,
    })
    return user_message.id


async def user_message_id(session: AsyncSession, request_id: uuid.UUID) -> uuid.UUID | None:
    """Return the id of the user message that started turn `request_id`, if it is stored."""
    return await session.scalar(select(Message.id).where(Message.request_id == request_id, Message.role == "user"))
