"""Chat turns by request id: status, and a stream that can be resumed."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, status
from sse_starlette import EventSourceResponse

from api.deps import SessionDep, StateDep
from api.events import stream_events
from api.permissions import ConversationReader, ConversationWriter
from api.runs import cancel_run, run_status
from api.schemas import CancelOut, RunStatus, error_responses
from db import chat

router = APIRouter(prefix="/api/chat/runs", tags=["runs"], responses=error_responses(401, 403, 404))

SSE_PING_SECONDS = 15


@router.get("/{request_id}", response_model=RunStatus)
async def get_run(request_id: uuid.UUID, state: StateDep, user: ConversationReader, session: SessionDep) -> RunStatus:
    """Return a turn's status, current phase, timings and usage."""
    upee = await chat.get_owned_session(session, request_id, user.id)
    answer = await chat.get_turn_answer(session, request_id)
    return await run_status(state.temporal, upee, answer)


@router.get("/{request_id}/stream", response_class=EventSourceResponse)
async def stream_run(
    request_id: uuid.UUID,
    state: StateDep,
    user: ConversationReader,
    session: SessionDep,
    last_event_id: Annotated[int | None, Header(ge=0, description="Resume after this event id")] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this event id (when no header is sent)")] = None,
    show_thinking: bool = False,
) -> EventSourceResponse:
    """Stream a turn's events after Last-Event-ID (or `after`); a finished turn replays them and ends."""
    await chat.get_owned_session(session, request_id, user.id)
    await session.close()
    after_id = last_event_id if last_event_id is not None else (after or 0)
    events = stream_events(hub=state.hub, session_factory=state.session_factory, client=state.temporal,
                           request_id=request_id, after_id=after_id, show_thinking=show_thinking)
    return EventSourceResponse(events, ping=SSE_PING_SECONDS)


@router.post("/{request_id}/cancel", response_model=CancelOut, status_code=status.HTTP_202_ACCEPTED,
             responses=error_responses(409))
async def cancel(request_id: uuid.UUID, state: StateDep, user: ConversationWriter, session: SessionDep) -> CancelOut:
    """Cancel a running turn; its partial answer is kept and marked cancelled."""
    upee = await chat.get_owned_session(session, request_id, user.id)
    await session.close()
    # The session row ends with the turn's last activity, a moment before the workflow closes.
    current = upee.status if upee.status != "running" else await cancel_run(state.temporal, request_id)
    if current != "running":
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {request_id} has already ended: {current}")
    return CancelOut(request_id=request_id, status="cancelling")
