"""Conversation history bounded by the model's context window."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.prompts import CUT_MARKER, fit_history
from db.chat import HistoryMessage
from db.models import Conversation, Message
from llm.budget import CHARS_PER_TOKEN, estimate_tokens
from tests.conftest import Caller
from tests.helpers import collect_stream
from tests.support.scripted_provider import ScriptedProvider


def test_fit_history_drops_oldest_first() -> None:
    history = [HistoryMessage(role="user", content=f"{i}" * 300) for i in range(10)]

    kept = fit_history(history, token_budget=350)

    assert [m.content[0] for m in kept] == ["7", "8", "9"]
    assert sum(estimate_tokens(m.content) for m in kept) <= 350


def test_fit_history_cuts_oversized_newest() -> None:
    history = [HistoryMessage(role="user", content="old"), HistoryMessage(role="user", content="x" * 3000 + "END")]

    kept = fit_history(history, token_budget=100)

    assert len(kept) == 1
    assert kept[0].content.startswith(CUT_MARKER)
    assert kept[0].content.endswith("END")
    assert len(kept[0].content) <= 100 * CHARS_PER_TOKEN


async def test_long_conversation_fits_context(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset()
    async with session_factory.begin() as session:
        conversation = Conversation(id=uuid.uuid4(), user_id=caller.user_id, title="long")
        session.add(conversation)
        await session.flush()
        for index in range(40):
            role = "user" if index % 2 == 0 else "assistant"
            session.add(Message(conversation_id=conversation.id, role=role, content=f"m{index} " + "y" * 600))

    events = await collect_stream(http, caller.headers, {"message": "newest question",
                                                         "conversation_id": str(conversation.id),
                                                         "model": "scripted-small"})

    assert events[-2].event == "complete"
    for call in provider.calls:
        prompt_chars = sum(len(m["content"]) for m in call.body["messages"])
        assert prompt_chars // CHARS_PER_TOKEN + call.body["max_tokens"] <= 1024
    answer_call = next(c for c in provider.calls if c.body.get("stream"))
    assert answer_call.body["messages"][-1]["content"] == "newest question"
    assert answer_call.body["max_tokens"] == 256


async def test_message_too_long_for_model_is_413(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.post("/api/chat/stream", json={"message": "z" * 1900, "model": "scripted-small"},
                               headers=caller.headers)

    assert response.status_code == 413
    assert "scripted-small" in response.json()["detail"]


async def test_ten_thousand_messages_stay_out_of_history(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider, temporal_client: Client,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset()
    short = await collect_stream(http, caller.headers, {"message": "short one"})
    async with session_factory.begin() as session:
        conversation = Conversation(id=uuid.uuid4(), user_id=caller.user_id, title="very long")
        session.add(conversation)
        await session.flush()
        await session.execute(insert(Message), [
            {"conversation_id": conversation.id, "role": "user" if index % 2 == 0 else "assistant",
             "content": f"message {index} " + "z" * 200}
            for index in range(10_000)
        ])
    provider.reset()

    long = await collect_stream(http, caller.headers, {"message": "long one", "conversation_id": str(conversation.id)})

    assert long[-2].event == "complete"
    answer_call = next(c for c in provider.calls if c.body.get("stream"))
    assert len(answer_call.body["messages"]) <= 1 + 20
    histories = []
    for events in (short, long):
        history = await temporal_client.get_workflow_handle(f"upee-{events[0].data['request_id']}").fetch_history()
        histories.append(history)
    short_size, long_size = (len(h.to_json()) for h in histories)
    # Event batching varies from run to run; nothing may scale with the conversation.
    assert long_size < short_size * 1.3
    assert "message 9999" not in histories[1].to_json()
