"""Conversation listing, reading and deletion; models and health."""

from __future__ import annotations

import json
import time
import uuid

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import RunEvent
from tests.conftest import Caller
from tests.support.scripted_provider import Script, ScriptedProvider


async def test_conversations_paginate_with_total(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    for index in range(3):
        response = await http.post("/api/chat", json={"message": f"question {index}"}, headers=caller.headers)
        assert response.status_code == 200, response.text

    first = await http.get("/api/chat/conversations", params={"limit": 2}, headers=caller.headers)
    second = await http.get("/api/chat/conversations", params={"limit": 2, "offset": 2}, headers=caller.headers)

    assert first.json()["total"] == 3
    assert len(first.json()["items"]) == 2
    assert len(second.json()["items"]) == 1
    assert first.json()["items"][0]["title"] == "question 2"
    assert "metadata" in first.json()["items"][0]


async def test_conversation_detail_and_delete(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    answer = (await http.post("/api/chat", json={"message": "hello"}, headers=caller.headers)).json()
    path = f"/api/chat/conversations/{answer['conversation_id']}"

    detail = (await http.get(path, headers=caller.headers)).json()
    deleted = await http.delete(path, headers=caller.headers)
    after = await http.get(path, headers=caller.headers)

    assert [(m["role"], m["status"]) for m in detail["messages"]] == [("user", "completed"), ("assistant", "completed")]
    assert detail["messages"][1]["content"] == "Paris is the capital."
    assert detail["messages"][1]["metadata"]["quality_score"] == 0.9
    assert deleted.status_code == 204
    assert after.status_code == 404


async def test_pagination_limits_are_422(http: httpx.AsyncClient, caller: Caller) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        response = await http.get("/api/chat/conversations", params=params, headers=caller.headers)
        assert response.status_code == 422, params


async def test_models_report_reachability(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.get("/api/chat/models", headers=caller.headers)

    models = {model["name"]: model for model in response.json()}
    assert set(models) == {"scripted", "scripted-anthropic", "scripted-small", "smollm2-135m"}
    assert models["scripted"]["reachable"] is True
    assert models["scripted"]["default"] is True
    assert models["scripted"]["latency_ms"] is not None
    assert "api_key" not in models["scripted"]


async def test_health_reports_each_dependency(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/health")

    body = response.json()
    assert response.status_code == 200
    assert body["database"]["ok"] is True
    assert body["temporal"]["ok"] is True
    assert body["providers"]["scripted"]["ok"] is True
    assert body["database"]["latency_ms"] >= 0


async def test_delete_removes_stream_events(
    http: httpx.AsyncClient, caller: Caller, script: Script, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    answer = (await http.post("/api/chat", json={"message": "hello"}, headers=caller.headers)).json()

    await http.delete(f"/api/chat/conversations/{answer['conversation_id']}", headers=caller.headers)

    async with session_factory() as session:
        left = await session.scalar(select(func.count()).select_from(RunEvent).where(
            RunEvent.request_id == uuid.UUID(answer["request_id"])))
    assert left == 0


async def test_delete_during_turn_stops_it(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    provider.reset(Script(answer_tokens=[f" w{i}" for i in range(40)], token_delay=0.03))
    events: list[tuple[str, dict[str, object]]] = []
    started = time.monotonic()
    async with aconnect_sse(http, "POST", "/api/chat/stream", json={"message": "hello"},
                            headers=caller.headers) as source:
        async for sse in source.aiter_sse():
            events.append((sse.event, json.loads(sse.data) if sse.data else {}))
            if sse.event == "content" and sum(1 for name, _ in events if name == "content") == 1:
                conversation_id = events[0][1]["conversation_id"]
                deleted = await http.delete(f"/api/chat/conversations/{conversation_id}", headers=caller.headers)
                assert deleted.status_code == 204
            if sse.event == "done":
                break

    error = next(data for name, data in events if name == "error")
    assert error["type"] == "ConversationDeletedError"
    assert time.monotonic() - started < 15
    request_id = uuid.UUID(str(events[0][1]["request_id"]))
    async with session_factory() as session:
        content_rows = await session.scalar(select(func.count()).select_from(RunEvent).where(
            RunEvent.request_id == request_id, RunEvent.event == "content"))
    assert content_rows == 0
