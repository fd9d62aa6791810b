"""Limits on chat turns per user and per API key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.users import create_api_key
from settings import Settings
from tests.conftest import Caller
from tests.support.scripted_provider import Script


@pytest.fixture
def tight_limits(settings: Settings) -> Iterator[Settings]:
    """Lower the limits on the settings object the running API reads, for one test."""
    saved = (settings.chat_turns_per_minute_per_user, settings.chat_turns_per_minute_per_key)
    settings.chat_turns_per_minute_per_user, settings.chat_turns_per_minute_per_key = 3, 2
    yield settings
    settings.chat_turns_per_minute_per_user, settings.chat_turns_per_minute_per_key = saved


async def test_key_limit_answers_429(
    http: httpx.AsyncClient, caller: Caller, script: Script, tight_limits: Settings
) -> None:
    answers = [await http.post("/api/chat", json={"message": f"q{i}"}, headers=caller.headers) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert "API key" in answers[2].json()["message"]


async def test_user_limit_spans_keys(
    http: httpx.AsyncClient, caller: Caller, script: Script, tight_limits: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory.begin() as session:
        second_key = (await create_api_key(session, caller.user_id, "second")).plaintext
    first = [await http.post("/api/chat", json={"message": f"q{i}"}, headers=caller.headers) for i in range(2)]

    third = await http.post("/api/chat", json={"message": "q2"}, headers={"X-API-Key": second_key})
    fourth = await http.post("/api/chat/stream", json={"message": "q3"}, headers={"X-API-Key": second_key})

    assert [a.status_code for a in first] == [200, 200]
    assert third.status_code == 200
    assert fourth.status_code == 429
    assert "user" in fourth.json()["message"]
    assert "Retry-After" in fourth.headers
