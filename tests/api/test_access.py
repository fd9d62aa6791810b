"""Authentication, ownership and input limits of the chat routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Caller, make_caller
from tests.support.scripted_provider import Script

QUESTION = "What is the capital of France?"


async def test_missing_key_is_401(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/chat/conversations")

    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert "Missing credentials" in response.json()["detail"]


async def test_wrong_keys_are_401(http: httpx.AsyncClient, caller: Caller) -> None:
    _, key_id, _secret = caller.api_key.split("_", 2)
    wrong = [
        "not-a-key",
        f"pak_{key_id}_wrong-secret",
        f"pak_{uuid.uuid4().hex}_whatever",
        f"pak_zz{key_id[2:]}_x",
        "",
    ]
    for key in wrong:
        response = await http.get("/api/chat/conversations", headers={"X-API-Key": key})
        assert response.status_code == 401, key


async def test_bearer_key_accepted(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.get("/api/chat/conversations", headers={"Authorization": f"Bearer {caller.api_key}"})

    assert response.status_code == 200


async def test_other_users_conversation_is_404(
    http: httpx.AsyncClient, caller: Caller, script: Script, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    answer = await http.post("/api/chat", json={"message": QUESTION}, headers=caller.headers)
    conversation_id = answer.json()["conversation_id"]
    other = await make_caller(session_factory)

    read = await http.get(f"/api/chat/conversations/{conversation_id}", headers=other.headers)
    delete = await http.delete(f"/api/chat/conversations/{conversation_id}", headers=other.headers)
    post = await http.post("/api/chat/stream", json={"message": "hi", "conversation_id": conversation_id},
                           headers=other.headers)
    still_there = await http.get(f"/api/chat/conversations/{conversation_id}", headers=caller.headers)

    assert read.status_code == 404
    assert delete.status_code == 404
    assert post.status_code == 404
    assert still_there.status_code == 200


async def test_unknown_conversation_is_404(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.get(f"/api/chat/conversations/{uuid.uuid4()}", headers=caller.headers)

    assert response.status_code == 404


async def test_oversized_message_is_413(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.post("/api/chat/stream", json={"message": "x" * 2001}, headers=caller.headers)

    assert response.status_code == 413
    assert "2000" in response.json()["detail"]


async def test_invalid_fields_are_422(http: httpx.AsyncClient, caller: Caller) -> None:
    cases = [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "hi", "temperature": 5}, "temperature"),
        ({"message": "hi", "conversation_id": "nope"}, "conversation_id"),
        ({"message": "hi", "unknown": 1}, "unknown"),
    ]
    for body, field in cases:
        response = await http.post("/api/chat/stream", json=body, headers=caller.headers)
        assert response.status_code == 422, body
        assert field in response.json()["message"], response.json()


async def test_unknown_model_is_422(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.post("/api/chat", json={"message": "hi", "model": "gpt-99"}, headers=caller.headers)

    assert response.status_code == 422
    assert "model" in response.json()["message"]
    assert "gpt-99" in response.json()["message"]
    assert "scripted" in response.json()["message"]


async def test_blank_message_and_bad_json_are_422(http: httpx.AsyncClient, caller: Caller) -> None:
    blank = await http.post("/api/chat/stream", json={"message": "  \n\t "}, headers=caller.headers)
    broken = await http.post("/api/chat/stream", content=b'{"message": ', headers={
        **caller.headers, "Content-Type": "application/json"})

    assert blank.status_code == 422
    assert "whitespace" in blank.json()["message"]
    assert broken.status_code == 422
    assert "invalid JSON" in broken.json()["message"]


async def test_hostile_bodies_are_422(http: httpx.AsyncClient, caller: Caller) -> None:
    headers = {**caller.headers, "Content-Type": "application/json"}
    cases = [
        (b'{"message": "hi", "temperature": NaN}', "temperature"),
        (b'{"message": "hi", "temperature": Infinity}', "temperature"),
        (b'{"message": "hi", "temperature": 1e309}', "temperature"),
        (b'{"message": "hi", "temperature": true}', "temperature"),
        (b'{"message": "hi", "other": NaN}', "other"),
        (b'{"message": "\\ud800"}', "message"),
        (b'{"message": "hi", "\\udfff": 1}', "unicode"),
        (b'{"message": "a\\u0000b"}', "NUL"),
        (b'{"message": "hi", "model": ""}', "model"),
        (b'[1, 2]', "JSON object"),
    ]
    for body, expected in cases:
        response = await http.post("/api/chat/stream", content=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert expected in response.json()["message"], (body, response.json())


async def test_many_extra_fields_give_short_422(http: httpx.AsyncClient, caller: Caller) -> None:
    body = {"message": "hi", **{f"field{i}": "x" * 20 for i in range(2000)}}

    response = await http.post("/api/chat/stream", json=body, headers=caller.headers)

    assert response.status_code == 422
    assert len(response.content) < 10_000
    assert "and 1980 more" in response.json()["message"]


async def test_huge_offset_is_422(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.get("/api/chat/conversations", params={"offset": 2**63}, headers=caller.headers)

    assert response.status_code == 422
    assert "offset" in response.json()["message"]


async def test_oversized_body_is_413(http: httpx.AsyncClient, caller: Caller) -> None:
    response = await http.post("/api/chat/stream", content=b"x" * 20_000_000,
                               headers={**caller.headers, "Content-Type": "application/json"})

    assert response.status_code == 413
    assert "limit" in response.json()["message"]


async def test_chunked_oversized_body_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(400):
            yield b"x" * 65_536

    # No Content-Length, so only the bytes read can tell the size; no credentials are needed to send it.
    response = await http.post("/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert "limit" in response.json()["message"]
