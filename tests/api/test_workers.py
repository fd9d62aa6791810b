"""Worker tasks through the API, the built-in task types, the worker registry and the health check."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.task_types import (
    TASK_TYPES,
    HttpFetchParams,
    TaskContext,
    TaskRejected,
    http_fetch,
    register_task_type,
)
from db.models import UPEESession, WorkerInstance, WorkerTask
from llm.registry import ProviderRegistry
from settings import Settings
from tests.conftest import Caller, make_caller, serve_api
from tests.helpers import wait_for
from tests.support.scripted_provider import Script, ScriptedProvider
from tests.support.webhook_server import WebhookServer, start_webhook_server
from workflows.worker_tasks import WorkerHealthWorkflow, temporal_priority

SOURCE = '''
import os
from json import loads


class Store(dict):
    def get_all(self, keys=[]):
        return [self[k] for k in keys]


def tangled(a, b, c):
    try:
        if a and b or c:
            for item in range(a):
                if item % 2:
                    while b:
                        b -= 1
        elif c:
            return eval("1")
    except:
        pass
    return [x for x in range(3) if x]
'''


@pytest.fixture(scope="module")
def webhooks() -> Iterator[WebhookServer]:
    server = start_webhook_server()
    yield server
    server.stop()


async def create_task(http: httpx.AsyncClient, caller: Caller, **body: Any) -> dict[str, Any]:
    response = await http.post("/api/workers/tasks", json=body, headers=caller.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def ended(http: httpx.AsyncClient, caller: Caller, task_id: str) -> dict[str, Any] | None:
    task: dict[str, Any] = (await http.get(f"/api/workers/tasks/{task_id}", headers=caller.headers)).json()
    return task if task["status"] in ("completed", "failed", "cancelled") else None


async def test_code_analysis_task(http: httpx.AsyncClient, caller: Caller) -> None:
    created = await create_task(http, caller, task_type="code_analysis", payload={"source": SOURCE}, priority=2)

    task = await wait_for(lambda: ended(http, caller, created["id"]), timeout=30)

    assert created["status"] in ("pending", "running", "completed")
    assert task["status"] == "completed", task
    assert task["worker_id"] is not None
    assert task["started_at"] is not None
    assert task["completed_at"] is not None
    result = task["result"]
    assert {f["name"] for f in result["functions"]} == {"get_all", "tangled"}
    assert result["classes"] == [{"name": "Store", "line": 6, "bases": ["dict"], "methods": ["get_all"]}]
    assert result["imports"] == ["json", "os"]
    assert result["max_complexity"] >= 8
    assert {f["rule"] for f in result["findings"]} == {"bare-except", "eval-exec", "mutable-default"}


async def test_invalid_source_fails_without_retry(http: httpx.AsyncClient, caller: Caller) -> None:
    created = await create_task(http, caller, task_type="code_analysis", payload={"source": "def broken(:"},
                                max_retries=3)

    task = await wait_for(lambda: ended(http, caller, created["id"]), timeout=30)

    assert task["status"] == "failed"
    assert "not valid Python" in task["error_message"]
    assert task["retry_count"] == 0


async def test_http_fetch_task(http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer) -> None:
    created = await create_task(http, caller, task_type="http_fetch", payload={"url": f"{webhooks.url}/fetch/ok"})

    task = await wait_for(lambda: ended(http, caller, created["id"]), timeout=30)

    assert task["status"] == "completed", task
    assert task["result"]["status_code"] == 200
    assert task["result"]["text"] == '{"ok": true}'


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://localhost:9/", "http://169.254.169.254/latest",
                                 "http://[::1]:9/", "http://10.0.0.1/"])
async def test_http_fetch_refuses_local_addresses(settings: Settings, url: str) -> None:
    strict = settings.model_copy(update={"http_allow_private_addresses": False})
    context = TaskContext(task_id="t", attempt=1, settings=strict, providers=ProviderRegistry(strict))

    with pytest.raises(TaskRejected, match="private or local address"):
        await http_fetch(context, HttpFetchParams(url=url))  # type: ignore[arg-type]


async def test_llm_complete_task(http: httpx.AsyncClient, caller: Caller, script: Script) -> None:
    script.answer_tokens = ["Forty", "-two"]
    created = await create_task(http, caller, task_type="llm_complete", payload={"prompt": "The answer?"})

    task = await wait_for(lambda: ended(http, caller, created["id"]), timeout=30)

    assert task["status"] == "completed", task
    assert task["result"]["model"] == "scripted"
    assert task["result"]["text"]


@pytest.mark.parametrize(("body", "expected"), [
    ({"task_type": "teleport"}, "task_type: unknown task type"),
    ({"task_type": "code_analysis", "payload": {}}, "payload.source: Field required"),
    ({"task_type": "http_fetch", "payload": {"url": "file:///etc/passwd"}}, "payload.url"),
    ({"task_type": "code_analysis", "payload": {"source": "x"}, "priority": 11}, "priority"),
])
async def test_invalid_tasks_are_422(http: httpx.AsyncClient, caller: Caller, body: dict[str, Any],
                                     expected: str) -> None:
    response = await http.post("/api/workers/tasks", json=body, headers=caller.headers)

    assert response.status_code == 422
    assert expected in response.json()["message"]


class NothingParams(BaseModel):
    pass


async def test_task_without_a_worker_waits_then_fails(
    http: httpx.AsyncClient, settings: Settings, caller: Caller
) -> None:
    # Registered after the workers started, so no worker serves it.
    register_task_type("test_unserved", NothingParams)(lambda _context, _params: {})
    try:
        async with serve_api(settings.model_copy(update={"worker_task_wait_seconds": 3.0})) as url, \
                httpx.AsyncClient(base_url=url, timeout=30) as client:
            created = await create_task(client, caller, task_type="test_unserved")
            task = await wait_for(lambda: ended(client, caller, created["id"]), timeout=30)
    finally:
        del TASK_TYPES["test_unserved"]

    assert created["status"] == "pending"
    assert "no worker serves the capability test_unserved" in created["waiting_reason"]
    assert task["status"] == "failed"
    assert "no worker with the capability test_unserved took the task within 3 s" in task["error_message"]


async def test_cancel_a_running_task(http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer) -> None:
    created = await create_task(http, caller, task_type="http_fetch", payload={"url": f"{webhooks.url}/c/slow/20"})
    await wait_for(lambda: _running(http, caller, created["id"]), timeout=30)

    cancel = await http.post(f"/api/workers/tasks/{created['id']}/cancel", headers=caller.headers)
    task = await wait_for(lambda: ended(http, caller, created["id"]), timeout=30)
    again = await http.post(f"/api/workers/tasks/{created['id']}/cancel", headers=caller.headers)

    assert cancel.status_code == 202
    assert task["status"] == "cancelled"
    assert again.status_code == 409


async def _running(http: httpx.AsyncClient, caller: Caller, task_id: str) -> bool:
    task = (await http.get(f"/api/workers/tasks/{task_id}", headers=caller.headers)).json()
    return bool(task["status"] == "running")


async def test_task_lists_filter_and_hide_other_users(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = await create_task(http, caller, task_type="code_analysis", payload={"source": "x = 1"})
    await wait_for(lambda: ended(http, caller, created["id"]), timeout=30)
    stranger = await make_caller(session_factory)
    admin = await make_caller(session_factory, role="admin")

    mine = (await http.get("/api/workers/tasks", params={"task_type": "code_analysis", "status": "completed"},
                           headers=caller.headers)).json()
    theirs = (await http.get("/api/workers/tasks", headers=stranger.headers)).json()
    hidden = await http.get(f"/api/workers/tasks/{created['id']}", headers=stranger.headers)
    everyone = (await http.get("/api/workers/tasks", params={"limit": 100}, headers=admin.headers)).json()
    by_worker = (await http.get("/api/workers/tasks", params={"worker_id": mine["items"][0]["worker_id"]},
                                headers=caller.headers)).json()

    assert [t["id"] for t in mine["items"]] == [created["id"]]
    assert theirs["total"] == 0
    assert hidden.status_code == 404
    assert created["id"] in {t["id"] for t in everyone["items"]}
    assert by_worker["total"] == 1


async def test_workers_list_get_and_deregister(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory.begin() as session:
        ghost = WorkerInstance(name=f"ghost-{uuid.uuid4().hex[:6]}", capabilities=["code_analysis"],
                               status="inactive")
        session.add(ghost)
    developer = await make_caller(session_factory, role="developer")

    listed = (await http.get("/api/workers", headers=caller.headers)).json()
    active = (await http.get("/api/workers", params={"status": "active", "capability": "http_fetch"},
                             headers=caller.headers)).json()
    one = await http.get(f"/api/workers/{ghost.id}", headers=caller.headers)
    by_user = await http.delete(f"/api/workers/{ghost.id}", headers=caller.headers)
    by_developer = await http.delete(f"/api/workers/{ghost.id}", headers=developer.headers)
    after = await http.get(f"/api/workers/{ghost.id}", headers=caller.headers)

    assert ghost.name in {w["name"] for w in listed}
    assert active
    assert all("http_fetch" in w["capabilities"] and w["status"] == "active" for w in active)
    assert one.json()["running_tasks"] == 0
    assert by_user.status_code == 403
    assert by_developer.status_code == 204
    assert after.json()["status"] == "inactive"
    assert after.json()["name"].startswith(f"{ghost.name}-deregistered-")


async def test_task_types_report_their_workers(http: httpx.AsyncClient, caller: Caller) -> None:
    types = {t["name"]: t for t in (await http.get("/api/workers/task-types", headers=caller.headers)).json()}

    assert {"code_analysis", "http_fetch", "llm_complete"} <= set(types)
    assert types["code_analysis"]["workers"] >= 1
    assert "source" in types["code_analysis"]["payload_schema"]["properties"]


async def test_health_check_marks_silent_workers_unhealthy(
    settings: Settings, temporal_client: Client, session_factory: async_sessionmaker[AsyncSession], api_url: str,
) -> None:
    async with session_factory.begin() as session:
        silent = WorkerInstance(name=f"silent-{uuid.uuid4().hex[:6]}", capabilities=["http_fetch"], status="active",
                                last_heartbeat=datetime.now(UTC) - timedelta(minutes=5))
        session.add(silent)

    result = await temporal_client.execute_workflow(WorkerHealthWorkflow.run, id=f"health-{uuid.uuid4()}",
                                                    task_queue=settings.temporal_task_queue)

    assert silent.name in result.marked_unhealthy
    assert result.pollers["http_fetch"] >= 1
    async with session_factory() as session:
        assert (await session.get(WorkerInstance, silent.id)).status == "unhealthy"  # type: ignore[union-attr]


def test_priority_maps_onto_temporal_levels() -> None:
    assert [temporal_priority(p).priority_key for p in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


async def test_planned_tasks_feed_the_answer(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    script = provider.reset()
    script.structured["plan"] = {"steps": ["analyse the code"], "worker_tasks": [
        {"task_type": "code_analysis", "payload": {"source": "def add(a, b):\n    return a + b\n"}},
        {"task_type": "code_analysis", "payload": {"source": "class Empty:\n    pass\n"}},
        {"task_type": "teleport", "payload": {}},
        {"task_type": "http_fetch", "payload": {"url": "not a url"}},
    ]}

    response = await http.post("/api/chat", json={"message": "Review my code."}, headers=caller.headers)

    assert response.status_code == 200, response.text
    async with session_factory() as session:
        phases = (await session.scalar(select(UPEESession.phases_data).where(
            UPEESession.request_id == uuid.UUID(response.json()["request_id"]))))
    planned = phases["plan"]["worker_tasks"]
    assert [t["status"] for t in planned] == ["pending", "pending", "rejected", "rejected"]
    assert [t["status"] for t in phases["execute_0"]["worker_tasks"]] == ["completed", "completed"]
    answer_call = next(call for call in reversed(provider.calls) if call.body.get("stream"))
    system_prompt = answer_call.body["messages"][0]["content"]
    assert "Use these results of worker tasks" in system_prompt
    assert '"name": "add"' in system_prompt
    assert '"name": "Empty"' in system_prompt


async def test_deeply_nested_source_is_rejected(http: httpx.AsyncClient, caller: Caller) -> None:
    source = "x = " + "(" * 5000 + "1" + ")" * 5000
    created = await create_task(http, caller, task_type="code_analysis", payload={"source": source})

    task = await wait_for(lambda: ended(http, caller, created["id"]), timeout=30)

    assert task["status"] == "failed"
    assert task["retry_count"] == 0


async def test_running_task_on_a_stopped_worker_says_so(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory.begin() as session:
        stopped = WorkerInstance(name=f"stopped-{uuid.uuid4().hex[:6]}", capabilities=["http_fetch"],
                                 status="inactive")
        session.add(stopped)
        await session.flush()
        task = WorkerTask(task_type="http_fetch", payload={"url": "http://127.0.0.1:9/"}, status="running",
                          worker_id=stopped.id, user_id=caller.user_id)
        session.add(task)

    shown = (await http.get(f"/api/workers/tasks/{task.id}", headers=caller.headers)).json()

    assert shown["status"] == "running"
    assert f"its worker {stopped.name} stopped" in shown["waiting_reason"]
