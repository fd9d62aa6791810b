"""Starting a chat turn: the request's records, then its UPEE workflow."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func, update
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from api.deps import AppState
from api.runs import cancel_run
from api.schemas import ChatRequest
from db import chat
from db.models import Conversation, User
from db.run_events import append_event
from llm.budget import CHARS_PER_TOKEN, estimate_tokens, max_message_tokens
from workflows.upee import UPEEWorkflow
from workflows.upee_types import UPEEInput, UPEEResult

logger = logging.getLogger(__name__)

TITLE_LENGTH = 80


@dataclass(frozen=True)
class StartedTurn:
    request_id: uuid.UUID
    conversation_id: uuid.UUID
    handle: WorkflowHandle[UPEEWorkflow, UPEEResult]


def workflow_id(request_id: uuid.UUID) -> str:
    return f"upee-{request_id}"


def check_request(state: AppState, body: ChatRequest) -> str:
    """Apply the limits pydantic cannot express as 422; return the model to use."""
    settings = state.settings
    if len(body.message) > settings.max_message_chars:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"message is {len(body.message)} characters; the limit is {settings.max_message_chars}",
        )
    model = body.model or settings.default_model_name
    config = settings.model_by_name(model)
    if config is None:
        configured = ", ".join(m.name for m in settings.models)
        raise RequestValidationError([{
            "loc": ("body", "model"), "type": "value_error", "input": model,
            "msg": f"model {model!r} is not configured; configured models: {configured}",
        }])
    limit = max_message_tokens(config.context_window)
    if estimate_tokens(body.message) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"message is too long for model {model!r}: about {estimate_tokens(body.message)} tokens, and the "
            f"model takes at most {limit} tokens (about {limit * CHARS_PER_TOKEN} characters) with its answer",
        )
    return model


async def start_turn(state: AppState, user: User, body: ChatRequest) -> StartedTurn:
    """Store the user message and the turn's session row, then start `upee-<request_id>`."""
    model = check_request(state, body)
    request_id, assistant_message_id = uuid.uuid4(), uuid.uuid4()
    running: list[uuid.UUID] = []

    async with state.session_factory.begin() as session:
        if body.conversation_id is None:
            conversation = Conversation(user_id=user.id, title=body.message.strip()[:TITLE_LENGTH])
            session.add(conversation)
            await session.flush()
        else:
            conversation = await chat.get_owned_conversation(session, body.conversation_id, user.id)
            # Locks the conversation row, so concurrent messages see each other's turns.
            await session.execute(
                update(Conversation).where(Conversation.id == conversation.id).values(updated_at=func.now())
            )
            running = await chat.running_turns(session, conversation.id)
            if running and body.multitask == "reject":
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"turn {running[-1]} is still running in conversation {conversation.id}; wait for it, "
                    "cancel it, or send multitask=enqueue or interrupt",
                )
        user_message_id = await chat.add_turn(session, conversation.id, body.message, request_id,
                                              assistant_message_id, model)
        conversation_id = conversation.id

    if body.conversation_id is not None and body.multitask == "interrupt":
        for earlier in running:
            await cancel_run(state.temporal, earlier)

    settings = state.settings
    arguments = UPEEInput(
        request_id=str(request_id), conversation_id=str(conversation_id), user_message_id=str(user_message_id),
        assistant_message_id=str(assistant_message_id), model=model, temperature=body.temperature,
        quality_threshold=settings.quality_threshold, max_refinements=settings.max_refinements,
        history_messages=settings.history_messages, wait_for_earlier_turns=bool(running),
        worker_task_timeout_seconds=settings.upee_worker_task_timeout_seconds,
    )
    try:
        handle = await state.temporal.start_workflow(
            UPEEWorkflow.run, arguments, id=workflow_id(request_id), task_queue=settings.temporal_task_queue,
        )
    except RPCError as error:
        logger.error("could not start workflow for request %s: %s", request_id, error)
        async with state.session_factory.begin() as session:
            await append_event(session, request_id, "error", {"message": "the turn could not be started",
                                                              "type": "WorkflowStartError"})
            await append_event(session, request_id, "done", {})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "The workflow service is unavailable; try again shortly") from error
    logger.info("started chat turn %s in conversation %s", request_id, conversation_id)
    return StartedTurn(request_id=request_id, conversation_id=conversation_id, handle=handle)
