"""A second message while a turn of the same conversation runs: reject, enqueue or interrupt."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Message
from tests.conftest import Caller
from tests.helpers import ReceivedEvent, collect_stream
from tests.support.scripted_provider import Script, ScriptedProvider

async def start_in_background(
    http: httpx.AsyncClient, caller: Caller, body: dict[str, object]
) -> tuple[str, asyncio.Task[list[ReceivedEvent]]]:
    """Start a streamed turn, return its request id once the stream has begun, and keep reading it."""
    first: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read() -> list[ReceivedEvent]:
        events: list[ReceivedEvent] = []
        async with aconnect_sse(http, "POST", "/api/chat/stream", json=body, headers=caller.headers) as source:
            assert source.response.status_code == 200
            async for sse in source.aiter_sse():
                events.append(ReceivedEvent(sse.id, sse.event, json.loads(sse.data) if sse.data else {}, 0.0))
                if not first.done():
                    first.set_result(events[0].data["request_id"])
                if sse.event == "done":
                    return events
        return events

    task = asyncio.create_task(read())
    return await asyncio.wait_for(first, 10), task


async def new_conversation(http: httpx.AsyncClient, caller: Caller) -> str:
    events = await collect_stream(http, caller.headers, {"message": "start"})
    return str(events[0].data["conversation_id"])


async def test_reject_names_running_turn(http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider) -> None:
    provider.reset()
    conversation_id = await new_conversation(http, caller)
    provider.reset(Script(answer_tokens=[f" a{i}" for i in range(30)], token_delay=0.05))
    running_id, running = await start_in_background(http, caller, {"message": "first",
                                                                    "conversation_id": conversation_id})

    response = await http.post("/api/chat/stream", json={"message": "second", "conversation_id": conversation_id,
                                                         "multitask": "reject"}, headers=caller.headers)
    await running

    assert response.status_code == 409
    assert running_id in response.json()["message"]


async def test_enqueue_runs_in_arrival_order(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset()
    conversation_id = await new_conversation(http, caller)
    provider.reset(Script(answer_tokens=[f" a{i}" for i in range(20)], token_delay=0.05))
    first_id, first = await start_in_background(http, caller, {"message": "first", "conversation_id": conversation_id})
    second_id, second = await start_in_background(http, caller, {"message": "second",
                                                                 "conversation_id": conversation_id})
    third_id, third = await start_in_background(http, caller, {"message": "third",
                                                               "conversation_id": conversation_id})

    results = await asyncio.gather(first, second, third)

    assert all(events[-2].event == "complete" for events in results)
    starts = {}
    for request_id, events in zip((first_id, second_id, third_id), results, strict=True):
        starts[request_id] = min(int(e.id) for e in events if e.event == "content")
    assert starts[first_id] < starts[second_id] < starts[third_id]
    answer_calls = [c for c in provider.calls if c.body.get("stream")]
    second_prompt = [m["content"] for m in answer_calls[1].body["messages"][1:]]
    assert second_prompt[-3:] == ["first", "".join(f" a{i}" for i in range(20)), "second"]
    assert "third" not in second_prompt
    detail = (await http.get(f"/api/chat/conversations/{conversation_id}", headers=caller.headers)).json()
    assert [(m["role"], m["content"][:6]) for m in detail["messages"]][2:] == [
        ("user", "first"), ("assistant", " a0 a1"), ("user", "second"), ("assistant", " a0 a1"),
        ("user", "third"), ("assistant", " a0 a1")]


async def test_interrupt_cancels_running_turn(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset()
    conversation_id = await new_conversation(http, caller)
    provider.reset(Script(answer_tokens=[f" a{i}" for i in range(200)], token_delay=0.05))
    first_id, first = await start_in_background(http, caller, {"message": "first", "conversation_id": conversation_id})
    while not any(c.body.get("stream") for c in provider.calls):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    provider.script.answer_tokens = ["second", " answer"]

    second = await collect_stream(http, caller.headers, {"message": "second", "conversation_id": conversation_id,
                                                         "multitask": "interrupt"})
    first_events = await first

    assert [e.event for e in first_events][-2:] == ["cancelled", "done"]
    assert second[-2].event == "complete"
    async with session_factory() as session:
        first_answer = await session.scalar(select(Message).where(
            Message.request_id == uuid.UUID(first_id), Message.role == "assistant"))
    assert first_answer is not None
    assert first_answer.status == "cancelled"
    assert first_answer.content.startswith(" a0")
