"""Chat turns through the HTTP API: SSE events, records in PostgreSQL, failures."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import FlexEvent, Message, UPEESession
from tests.conftest import Caller
from tests.helpers import collect_stream, wait_for
from tests.support.scripted_provider import Failure, ScriptedProvider, Script

QUESTION = "What is the capital of France?"


def content_of(events, answer: int = 0) -> str:  # type: ignore[no-untyped-def]
    return "".join(e.data["delta"] for e in events if e.event == "content" and e.data["answer"] == answer)


async def test_stream_events_and_records(
    http: httpx.AsyncClient, caller: Caller, script: Script, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    names = [e.event for e in events]
    assert names[0] == "conversation"
    assert names[-2:] == ["complete", "done"]
    assert "content" in names
    assert "thinking" not in names
    assert all(e.id for e in events)
    assert [int(e.id) for e in events] == sorted(int(e.id) for e in events)
    assert content_of(events) == "Paris is the capital."
    complete = events[-2].data
    assert complete["quality_score"] == 0.9
    assert complete["refinements"] == 0

    request_id = uuid.UUID(events[0].data["request_id"])
    async with session_factory() as session:
        messages = (await session.scalars(select(Message).where(Message.request_id == request_id)
                                          .order_by(Message.created_at))).all()
        upee = await session.scalar(select(UPEESession).where(UPEESession.request_id == request_id))
        phase_events = await session.scalar(select(func.count()).select_from(FlexEvent).where(
            FlexEvent.payload["request_id"].astext == str(request_id)))
    assert [(m.role, m.status) for m in messages] == [("user", "completed"), ("assistant", "completed")]
    assert messages[0].content == QUESTION
    assert messages[1].content == "Paris is the capital."
    assert messages[1].metadata_["usage"] == {"input_tokens": 11, "output_tokens": 5}
    assert upee is not None
    assert set(upee.phases_data) == {"understand", "plan", "execute_0", "evaluate_0"}
    assert upee.phases_data["understand"]["result"]["intent"] == "factual question"
    assert upee.phases_data["execute_0"]["usage"] == {"input_tokens": 11, "output_tokens": 5}
    assert all("duration_ms" in phase for phase in upee.phases_data.values())
    assert upee.quality_score == 0.9
    assert phase_events == 4


async def test_stream_first_token_before_last(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider
) -> None:
    script = provider.reset(Script(answer_tokens=[f" t{i}" for i in range(20)], token_delay=0.05))

    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    first_content = next(e for e in events if e.event == "content")
    stream_call = next(c for c in provider.calls if c.body.get("stream"))
    assert stream_call.last_token_sent is not None
    assert first_content.received_at < stream_call.last_token_sent
    assert content_of(events) == "".join(script.answer_tokens)


async def test_stream_disconnect_keeps_answer(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    script = provider.reset(Script(answer_tokens=[f" w{i}" for i in range(30)], token_delay=0.03))
    request_id = None
    async with aconnect_sse(http, "POST", "/api/chat/stream", json={"message": QUESTION},
                            headers=caller.headers) as source:
        async for sse in source.aiter_sse():
            if sse.event == "conversation":
                request_id = uuid.UUID(json.loads(sse.data)["request_id"])
            if sse.event == "content":
                break
    assert request_id is not None

    async def saved_answer() -> Message | None:
        async with session_factory() as session:
            return await session.scalar(select(Message).where(
                Message.request_id == request_id, Message.role == "assistant", Message.status == "completed"))

    message = await wait_for(saved_answer, timeout=30)
    assert message.content == "".join(script.answer_tokens)


async def test_stream_thinking_events(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    events = await collect_stream(http, caller.headers, {"message": QUESTION, "show_thinking": True})

    thinking = [(e.data["phase"], e.data["status"]) for e in events if e.event == "thinking"]
    assert thinking == [
        ("understand", "started"), ("understand", "completed"),
        ("plan", "started"), ("plan", "completed"),
        ("execute", "started"), ("execute", "completed"),
        ("evaluate", "started"), ("evaluate", "completed"),
    ]


async def test_stream_refines_low_score(http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider) -> None:
    provider.reset(Script(evaluations=[{"score": 0.2, "reason": "too short"}, {"score": 0.8, "reason": "fine"}]))

    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    resets = [e.data for e in events if e.event == "reset"]
    assert resets == [{"answer": 1, "reason": "refinement"}]
    assert content_of(events, answer=1) == "Paris is the capital."
    complete = next(e.data for e in events if e.event == "complete")
    assert complete["refinements"] == 1
    assert complete["quality_score"] == 0.8
    refine_call = [c for c in provider.calls if c.body.get("stream")][1]
    assert "too short" in refine_call.body["messages"][-1]["content"]


async def test_stream_anthropic_model(http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider) -> None:
    provider.reset()

    events = await collect_stream(http, caller.headers, {"message": QUESTION, "model": "scripted-anthropic"})

    assert content_of(events) == "Paris is the capital."
    assert {call.protocol for call in provider.calls} == {"anthropic"}
    assert next(e.data for e in events if e.event == "complete")["quality_score"] == 0.9


async def test_stream_rate_limit_honours_retry_after(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider
) -> None:
    provider.reset(Script(failures=[Failure(429, headers={"retry-after": "2"})]))

    started = time.monotonic()
    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    assert events[-2].event == "complete"
    first, second = provider.calls[0], provider.calls[1]
    assert second.started - first.started >= 1.9
    assert time.monotonic() - started >= 1.9


async def test_stream_client_error_fails_turn(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset(Script(failures=[Failure(400, body={"error": {"message": "bad request field"}})]))

    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    assert [e.event for e in events][-2:] == ["error", "done"]
    assert "HTTP 400" in events[-2].data["message"]
    assert len(provider.calls) == 1
    request_id = uuid.UUID(events[0].data["request_id"])
    async with session_factory() as session:
        answers = (await session.scalars(select(Message).where(
            Message.request_id == request_id, Message.role == "assistant"))).all()
    assert [(m.status, m.content) for m in answers] == [("failed", "")]
    assert "HTTP 400" in answers[0].metadata_["error"]


async def test_chat_returns_answer_json(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    response = await http.post("/api/chat", json={"message": QUESTION}, headers=caller.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content"] == "Paris is the capital."
    assert body["quality_score"] == 0.9
    assert body["usage"]["output_tokens"] > 0

    follow_up = await http.post("/api/chat", json={"message": "And of Italy?", "conversation_id":
                                                   body["conversation_id"]}, headers=caller.headers)
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.json()["conversation_id"] == body["conversation_id"]


async def test_concurrent_streams_stay_separate(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    streams = await asyncio.gather(*(collect_stream(http, caller.headers, {"message": f"q{i}"}) for i in range(4)))

    request_ids = {events[0].data["request_id"] for events in streams}
    assert len(request_ids) == 4
    for events in streams:
        assert content_of(events) == "Paris is the capital."
        assert events[-1].event == "done"


async def test_schema_miss_uses_fallback(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    script = provider.reset()
    script.structured["understanding"] = {"unexpected": "shape"}

    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    assert events[-2].event == "complete"
    request_id = uuid.UUID(events[0].data["request_id"])
    async with session_factory() as session:
        upee = await session.scalar(select(UPEESession).where(UPEESession.request_id == request_id))
    assert upee is not None
    assert upee.phases_data["understand"]["result"]["intent"] == "unknown"
    assert "Understanding" in upee.phases_data["understand"]["fallback"]
    assert upee.phases_data["plan"]["fallback"] is None


async def test_cut_stream_is_retried(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset(Script(cut_streams=1))

    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    assert [e.data for e in events if e.event == "reset"] == [{"answer": 0, "reason": "retry"}]
    assert events[-2].event == "complete"
    after_reset = events[[e.event for e in events].index("reset"):]
    assert content_of(after_reset) == "Paris is the capital."
    request_id = uuid.UUID(events[0].data["request_id"])
    async with session_factory() as session:
        answer = await session.scalar(select(Message.content).where(
            Message.request_id == request_id, Message.role == "assistant"))
    assert answer == "Paris is the capital."


async def test_empty_answer_is_retried(http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider) -> None:
    script = provider.reset(Script(answer_tokens=[]))

    async def fill_after_first_call() -> None:
        await wait_for(lambda: asyncio.sleep(0, result=any(c.body.get("stream") for c in provider.calls)))
        script.answer_tokens = ["Now", " filled."]

    filler = asyncio.create_task(fill_after_first_call())
    events = await collect_stream(http, caller.headers, {"message": QUESTION})
    await filler

    assert events[-2].event == "complete"
    assert content_of(events) == "Now filled."
