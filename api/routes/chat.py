"""Chat turns, their streams, conversations and models."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sse_starlette import EventSourceResponse
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from api.deps import SessionDep, StateDep
from api.events import cancel_on_disconnect, stream_events
from api.permissions import ConversationReader, ConversationWriter
from api.rate_limits import check_chat_rate
from api.schemas import (
    ChatRequest,
    ChatResponse,
    ConversationDetail,
    ConversationOut,
    MessageOut,
    ModelStatus,
    Page,
    error_responses,
)
from api.turns import start_turn
from db import chat
from llm.types import ProviderError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/chat", tags=["chat"], responses=error_responses(401, 403))

SSE_PING_SECONDS = 15
MODEL_CHECK_TIMEOUT_SECONDS = 3.0
# PostgreSQL's OFFSET is a bigint; anything near that is a mistake, not a page.
MAX_OFFSET = 10_000_000


@router.post("/stream", response_class=EventSourceResponse, responses=error_responses(404, 413, 429, 503))
async def stream_chat(
    body: ChatRequest, request: Request, state: StateDep, user: ConversationWriter
) -> EventSourceResponse:
    """Start a chat turn and stream its events (SSE); the turn goes on if the client leaves."""
    await check_chat_rate(state, user.id, getattr(request.state, "key_id", None))
    turn = await start_turn(state, user, body)
    events = stream_events(hub=state.hub, session_factory=state.session_factory, client=state.temporal,
                           request_id=turn.request_id, show_thinking=body.show_thinking)
    if body.on_disconnect == "cancel":
        events = cancel_on_disconnect(events, state.temporal, turn.request_id)
    return EventSourceResponse(events, ping=SSE_PING_SECONDS)


@router.post("", response_model=ChatResponse, responses=error_responses(404, 413, 429, 502, 503, 504))
async def create_chat(
    body: ChatRequest, request: Request, state: StateDep, user: ConversationWriter, session: SessionDep
) -> ChatResponse:
    """Run a chat turn and return the answer once it is complete."""
    await check_chat_rate(state, user.id, getattr(request.state, "key_id", None))
    turn = await start_turn(state, user, body)
    try:
        result = await asyncio.wait_for(turn.handle.result(), timeout=state.settings.chat_wait_seconds)
    except TimeoutError as error:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"Turn {turn.request_id} is still running after {state.settings.chat_wait_seconds:.0f} s; its answer "
            f"will be saved in conversation {turn.conversation_id}",
        ) from error
    except WorkflowFailureError as error:
        cause = error.cause.message if isinstance(error.cause, ApplicationError) else str(error.cause)
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"Turn {turn.request_id} failed: {cause}") from error
    content = await chat.get_message_content(session, uuid.UUID(result.assistant_message_id)) or ""
    return ChatResponse(
        request_id=turn.request_id, conversation_id=turn.conversation_id,
        message_id=uuid.UUID(result.assistant_message_id), content=content, quality_score=result.quality_score,
        refinements=result.refinements,
        usage={"input_tokens": result.usage.input_tokens, "output_tokens": result.usage.output_tokens},
    )


@router.get("/conversations", response_model=Page[ConversationOut])
async def list_conversations(
    user: ConversationReader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[ConversationOut]:
    """List the caller's conversations, most recently active first."""
    rows, total = await chat.list_conversations(session, user.id, limit, offset)
    items = [ConversationOut.model_validate(row) for row in rows]
    return Page[ConversationOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail, responses=error_responses(404))
async def get_conversation(conversation_id: uuid.UUID, user: ConversationReader, session: SessionDep) -> ConversationDetail:
    """Return one of the caller's conversations with its messages."""
    conversation = await chat.get_owned_conversation(session, conversation_id, user.id)
    messages = [MessageOut.model_validate(row) for row in await chat.list_messages(session, conversation_id)]
    summary = ConversationOut.model_validate(conversation)
    return ConversationDetail(**summary.model_dump(), messages=messages)


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=error_responses(404))
async def delete_conversation(conversation_id: uuid.UUID, user: ConversationWriter, session: SessionDep) -> Response:
    """Delete one of the caller's conversations with its messages and sessions."""
    await chat.get_owned_conversation(session, conversation_id, user.id)
    await chat.delete_conversation(session, conversation_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/models", response_model=list[ModelStatus])
async def list_models(state: StateDep, _user: ConversationReader) -> list[ModelStatus]:
    """List the configured models and whether each one responds right now."""
    settings = state.settings

    async def probe(name: str) -> tuple[bool, float | None, str | None]:
        started = time.monotonic()
        try:
            await asyncio.wait_for(state.providers.get(name).check(), timeout=MODEL_CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            return False, None, f"no answer within {MODEL_CHECK_TIMEOUT_SECONDS:.0f} s"
        except ProviderError as error:
            return False, None, str(error)[:300]
        return True, round((time.monotonic() - started) * 1000, 1), None

    results = await asyncio.gather(*(probe(model.name) for model in settings.models))
    return [
        ModelStatus(name=model.name, provider=model.provider, model=model.provider_model, base_url=model.base_url,
                    default=model.name == settings.default_model_name, reachable=ok, latency_ms=latency, error=error)
        for model, (ok, latency, error) in zip(settings.models, results, strict=True)
    ]
