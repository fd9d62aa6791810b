"""Conversation listing, reading and deletion; models and health."""

from __future__ import annotations

import httpx

from tests.conftest import Caller
from tests.support.scripted_provider import Script


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
