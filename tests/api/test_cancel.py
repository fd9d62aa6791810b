"""Cancelling a running turn: by request, and when the client leaves with on_disconnect=cancel."""

from __future__ import annotations

import json
import time
import uuid

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Message
from tests.conftest import Caller
from tests.helpers import collect_stream, wait_for
from tests.support.scripted_provider import Script, ScriptedProvider

QUESTION = "Tell me a long story."


async def answer_of(session_factory: async_sessionmaker[AsyncSession], request_id: str) -> Message | None:
    async with session_factory() as session:
        return await session.scalar(select(Message).where(
            Message.request_id == uuid.UUID(request_id), Message.role == "assistant"))


async def test_cancel_keeps_partial_answer(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset(Script(answer_tokens=[f" t{i}" for i in range(200)], token_delay=0.05))
    events: list[tuple[str, dict[str, object]]] = []
    cancelled_at = None
    async with aconnect_sse(http, "POST", "/api/chat/stream", json={"message": QUESTION},
                            headers=caller.headers) as source:
        async for sse in source.aiter_sse():
            events.append((sse.event, json.loads(sse.data) if sse.data else {}))
            if cancelled_at is None and sum(1 for name, _ in events if name == "content") == 5:
                request_id = str(events[0][1]["request_id"])
                response = await http.post(f"/api/chat/runs/{request_id}/cancel", headers=caller.headers)
                assert response.status_code == 202, response.text
                cancelled_at = time.monotonic()
            if sse.event == "done":
                done_at = time.monotonic()
                break

    assert cancelled_at is not None
    assert done_at - cancelled_at < 2.0
    names = [name for name, _ in events]
    assert names[-2:] == ["cancelled", "done"]
    streamed = "".join(str(data["delta"]) for name, data in events if name == "content")
    answer = await answer_of(session_factory, request_id)
    assert answer is not None
    assert answer.status == "cancelled"
    assert answer.content == streamed
    assert 0 < answer.metadata_["usage"]["output_tokens"] < 200
    stream_call = next(c for c in provider.calls if c.body.get("stream"))
    assert stream_call.finished is None, "the provider stream must be closed, not read to the end"
    status = (await http.get(f"/api/chat/runs/{request_id}", headers=caller.headers)).json()
    assert status["status"] == "cancelled"


async def test_cancel_ended_run_is_409(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    events = await collect_stream(http, caller.headers, {"message": "hi"})

    response = await http.post(f"/api/chat/runs/{events[0].data['request_id']}/cancel", headers=caller.headers)

    assert response.status_code == 409
    assert "completed" in response.json()["message"]


async def test_disconnect_cancels_when_asked(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset(Script(answer_tokens=[f" t{i}" for i in range(200)], token_delay=0.05))
    async with aconnect_sse(http, "POST", "/api/chat/stream", json={"message": QUESTION, "on_disconnect": "cancel"},
                            headers=caller.headers) as source:
        contents = 0
        async for sse in source.aiter_sse():
            if sse.event == "conversation":
                request_id = json.loads(sse.data)["request_id"]
            contents += sse.event == "content"
            if contents == 3:
                break

    async def cancelled() -> Message | None:
        answer = await answer_of(session_factory, request_id)
        return answer if answer is not None and answer.status == "cancelled" else None

    answer = await wait_for(cancelled, timeout=10)
    assert answer.content.startswith(" t0 t1 t2")
