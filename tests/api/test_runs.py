"""Run status and resumable streams by request id."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import uvicorn
from httpx_sse import aconnect_sse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from devstack.process import free_port
from settings import Settings
from tests.conftest import Caller, make_caller
from tests.helpers import ReceivedEvent, collect_stream, wait_for
from tests.support.scripted_provider import Failure, Script, ScriptedProvider

QUESTION = "What is the capital of France?"


async def read_run_stream(
    http: httpx.AsyncClient, caller: Caller, request_id: str, *, last_event_id: str | None = None,
    params: dict[str, str] | None = None, stop_after: int | None = None,
) -> list[ReceivedEvent]:
    headers = dict(caller.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[ReceivedEvent] = []
    async with aconnect_sse(http, "GET", f"/api/chat/runs/{request_id}/stream", headers=headers,
                            params=params) as source:
        assert source.response.status_code == 200, source.response.status_code
        async for sse in source.aiter_sse():
            events.append(ReceivedEvent(sse.id, sse.event, json.loads(sse.data) if sse.data else {}, 0.0))
            if sse.event == "done" or (stop_after is not None and len(events) >= stop_after):
                break
    return events


async def test_finished_run_replays_after_id(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    original = await collect_stream(http, caller.headers, {"message": QUESTION})
    request_id = original[0].data["request_id"]

    by_header = await read_run_stream(http, caller, request_id, last_event_id=original[2].id)
    by_query = await read_run_stream(http, caller, request_id, params={"after": original[2].id})
    everything = await read_run_stream(http, caller, request_id)
    after_done = await asyncio.wait_for(read_run_stream(http, caller, request_id, last_event_id=original[-1].id), 5)

    assert [e.id for e in by_header] == [e.id for e in original[3:]]
    assert [e.id for e in by_query] == [e.id for e in original[3:]]
    assert [e.id for e in everything] == [e.id for e in original]
    assert after_done == []


async def test_reconnect_mid_run_loses_nothing(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider
) -> None:
    script = provider.reset(Script(answer_tokens=[f" t{i}" for i in range(30)], token_delay=0.03))
    first_part: list[ReceivedEvent] = []
    async with aconnect_sse(http, "POST", "/api/chat/stream", json={"message": QUESTION},
                            headers=caller.headers) as source:
        async for sse in source.aiter_sse():
            first_part.append(ReceivedEvent(sse.id, sse.event, json.loads(sse.data), 0.0))
            if sum(1 for e in first_part if e.event == "content") == 3:
                break
    request_id = first_part[0].data["request_id"]

    rest = await read_run_stream(http, caller, request_id, last_event_id=first_part[-1].id)

    ids = [int(e.id) for e in first_part + rest]
    assert ids == sorted(set(ids))
    text = "".join(e.data["delta"] for e in first_part + rest if e.event == "content")
    assert text == "".join(script.answer_tokens)
    assert rest[-1].event == "done"


async def test_run_status_through_lifecycle(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider
) -> None:
    provider.reset(Script(answer_tokens=[f" t{i}" for i in range(40)], token_delay=0.05))
    first_event: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def follow() -> None:
        async with aconnect_sse(http, "POST", "/api/chat/stream", json={"message": QUESTION},
                                headers=caller.headers) as source:
            async for sse in source.aiter_sse():
                if not first_event.done():
                    first_event.set_result(json.loads(sse.data)["request_id"])
                if sse.event == "done":
                    return

    follower = asyncio.create_task(follow())
    request_id = await asyncio.wait_for(first_event, 10)

    async def executing() -> dict[str, object] | None:
        body = (await http.get(f"/api/chat/runs/{request_id}", headers=caller.headers)).json()
        return body if body["phase"] == "execute" else None

    running = await wait_for(executing, timeout=20)

    async def finished() -> dict[str, object] | None:
        body = (await http.get(f"/api/chat/runs/{request_id}", headers=caller.headers)).json()
        return body if body["status"] != "running" else None

    done = await wait_for(finished, timeout=30)
    await follower
    assert running["status"] == "running"
    assert done["status"] == "completed"
    assert done["phase"] is None
    assert done["quality_score"] == 0.9
    assert [t["phase"] for t in done["timings"]] == ["understand", "plan", "execute", "evaluate"]
    assert done["usage"]["output_tokens"] > 0
    assert done["message_id"] is not None


async def test_run_status_failed(http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider) -> None:
    provider.reset(Script(failures=[Failure(400)]))
    events = await collect_stream(http, caller.headers, {"message": QUESTION})

    body = (await http.get(f"/api/chat/runs/{events[0].data['request_id']}", headers=caller.headers)).json()

    assert body["status"] == "failed"
    assert "HTTP 400" in body["error"]


async def test_other_users_run_is_404(
    http: httpx.AsyncClient, caller: Caller, script: Script, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    events = await collect_stream(http, caller.headers, {"message": QUESTION})
    request_id = events[0].data["request_id"]
    other = await make_caller(session_factory)

    status = await http.get(f"/api/chat/runs/{request_id}", headers=other.headers)
    stream = await http.get(f"/api/chat/runs/{request_id}/stream", headers=other.headers)
    unknown = await http.get(f"/api/chat/runs/{uuid.uuid4()}", headers=caller.headers)

    assert status.status_code == 404
    assert stream.status_code == 404
    assert unknown.status_code == 404


async def test_reconnect_to_other_api_process(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider, settings: Settings
) -> None:
    script = provider.reset(Script(answer_tokens=[f" o{i}" for i in range(30)], token_delay=0.03))
    other_port = free_port()
    other = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=other_port,
                                          log_level="warning"))
    serving = asyncio.create_task(other.serve())
    try:
        while not other.started:
            await asyncio.sleep(0.02)
        first_part: list[ReceivedEvent] = []
        async with aconnect_sse(http, "POST", "/api/chat/stream", json={"message": QUESTION},
                                headers=caller.headers) as source:
            async for sse in source.aiter_sse():
                first_part.append(ReceivedEvent(sse.id, sse.event, json.loads(sse.data), 0.0))
                if sum(1 for e in first_part if e.event == "content") == 2:
                    break
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{other_port}", timeout=60) as other_http:
            rest = await read_run_stream(other_http, caller, first_part[0].data["request_id"],
                                         last_event_id=first_part[-1].id)
    finally:
        other.should_exit = True
        await serving

    ids = [int(e.id) for e in first_part + rest]
    assert ids == sorted(set(ids))
    assert "".join(e.data["delta"] for e in first_part + rest if e.event == "content") == "".join(
        script.answer_tokens)
