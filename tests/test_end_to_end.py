"""One chat turn through the API with the embedded SmolLM2 model: no scripted replies."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Message, UPEESession
from tests.conftest import Caller
from tests.helpers import collect_stream


async def test_local_model_answers_through_api(
    http: httpx.AsyncClient, caller: Caller, local_model: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    events = await collect_stream(
        http, caller.headers, {"message": "What is the capital of France?", "model": local_model}, timeout=240
    )

    names = [e.event for e in events]
    assert names[-2:] == ["complete", "done"], events[-2:]
    final_answer = max(e.data["answer"] for e in events if e.event == "content")
    streamed = "".join(e.data["delta"] for e in events if e.event == "content" and e.data["answer"] == final_answer)
    assert streamed.strip()
    complete = events[-2].data
    assert 0.0 <= complete["quality_score"] <= 1.0

    request_id = uuid.UUID(events[0].data["request_id"])
    async with session_factory() as session:
        answer = await session.scalar(select(Message).where(Message.request_id == request_id,
                                                            Message.role == "assistant"))
        upee = await session.scalar(select(UPEESession).where(UPEESession.request_id == request_id))
    assert answer is not None
    assert answer.status == "completed"
    assert answer.content == streamed
    assert upee is not None
    assert {"understand", "plan", "execute_0", "evaluate_0"} <= set(upee.phases_data)
