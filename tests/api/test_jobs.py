"""Scheduled jobs against the real Temporal server: schedules fire, pause, resume, retry, time out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from activities.job_actions import ActionContext, ActionRejected, check_address, register_action
from db.models import Message
from settings import Settings
from tests.conftest import Caller, make_caller, serve_api
from tests.helpers import wait_for
from tests.support.scripted_provider import Script
from tests.support.webhook_server import WebhookServer, start_webhook_server


@pytest.fixture(scope="module")
def webhooks() -> Iterator[WebhookServer]:
    server = start_webhook_server()
    yield server
    server.stop()


def webhook_job(webhooks: WebhookServer, tag: str, behaviour: str = "ok", **fields: Any) -> dict[str, Any]:
    return {
        "name": f"job-{tag}",
        "job_type": "interval",
        "schedule_spec": "1d",
        "action": {"type": "webhook", "params": {"url": f"{webhooks.url}/{tag}/{behaviour}"}},
        **fields,
    }


async def create(http: httpx.AsyncClient, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/api/jobs", json=body, headers=caller.headers)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def executions(http: httpx.AsyncClient, caller: Caller, job_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/jobs/{job_id}/executions", params={"limit": 100}, headers=caller.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def finished(http: httpx.AsyncClient, caller: Caller, job_id: str, count: int) -> list[dict[str, Any]] | None:
    done = [e for e in await executions(http, caller, job_id) if e["status"] != "running"]
    return done if len(done) >= count else None


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def test_cron_and_interval_jobs_fire_repeatedly(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    cron_tag, interval_tag = tag(), tag()
    cron = await create(http, caller, webhook_job(webhooks, cron_tag, job_type="cron", schedule_spec="* * * * *",
                                                  timezone="Europe/Paris"))
    interval = await create(http, caller, webhook_job(webhooks, interval_tag, schedule_spec="2s"))

    assert cron["schedule"]["id"] == f"job-{cron['id']}"
    assert len(cron["schedule"]["next_run_times"]) == 5
    await wait_for(lambda: finished(http, caller, interval["id"], 3), timeout=30)
    cron_runs = await wait_for(lambda: finished(http, caller, cron["id"], 2), timeout=150, interval=1)
    await http.post(f"/api/jobs/{interval['id']}/pause", headers=caller.headers)
    await http.post(f"/api/jobs/{cron['id']}/pause", headers=caller.headers)
    await asyncio.sleep(0.5)

    interval_runs = [e for e in await executions(http, caller, interval["id"]) if e["status"] != "running"]
    assert [e["status"] for e in cron_runs] == ["completed", "completed"]
    assert all(e["status"] == "completed" for e in interval_runs)
    assert webhooks.count(cron_tag) == len(await executions(http, caller, cron["id"]))
    assert webhooks.count(interval_tag) == len(await executions(http, caller, interval["id"]))
    cron_starts = sorted(datetime.fromisoformat(e["started_at"]) for e in cron_runs)
    assert cron_starts[1] - cron_starts[0] >= timedelta(seconds=50)
    job = (await http.get(f"/api/jobs/{interval['id']}", headers=caller.headers)).json()
    assert job["result"]["status_code"] == 200
    assert job["completed_at"] is not None
    assert job["schedule"]["runs_started"] == len(await executions(http, caller, interval["id"]))


async def test_one_time_job_runs_once_at_its_time(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    job_tag = tag()
    at = datetime.now(UTC) + timedelta(seconds=3)
    job = await create(http, caller, webhook_job(webhooks, job_tag, job_type="one_time", schedule_spec=None,
                                                 scheduled_at=at.isoformat()))

    assert job["status"] == "scheduled"
    assert [datetime.fromisoformat(t) for t in job["schedule"]["next_run_times"]] == [at.replace(microsecond=0)]
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=30)
    await asyncio.sleep(3)

    assert datetime.fromisoformat(runs[0]["started_at"]) >= at.replace(microsecond=0)
    assert len(await executions(http, caller, job["id"])) == 1
    assert webhooks.count(job_tag) == 1
    after = (await http.get(f"/api/jobs/{job['id']}", headers=caller.headers)).json()
    assert after["status"] == "completed"
    assert after["schedule"]["next_run_times"] == []


async def test_pause_stops_runs_and_resume_restarts(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag(), schedule_spec="1s"))
    await wait_for(lambda: finished(http, caller, job["id"], 2), timeout=30)

    paused = await http.post(f"/api/jobs/{job['id']}/pause", headers=caller.headers)
    await asyncio.sleep(1.5)
    count_at_pause = len(await executions(http, caller, job["id"]))
    await asyncio.sleep(3)
    count_while_paused = len(await executions(http, caller, job["id"]))
    resumed = await http.post(f"/api/jobs/{job['id']}/resume", headers=caller.headers)
    await wait_for(lambda: finished(http, caller, job["id"], count_while_paused + 2), timeout=30)

    assert paused.json()["status"] == "paused"
    assert paused.json()["schedule"]["paused"] is True
    assert paused.json()["enabled"] is False
    assert count_while_paused == count_at_pause
    assert resumed.json()["status"] in ("scheduled", "running")
    assert resumed.json()["schedule"]["paused"] is False
    await http.delete(f"/api/jobs/{job['id']}", headers=caller.headers)


async def test_trigger_runs_once_now(http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer) -> None:
    job_tag = tag()
    job = await create(http, caller, webhook_job(webhooks, job_tag))

    triggered = await http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=30)
    await asyncio.sleep(1)

    assert triggered.status_code == 202
    assert len(await executions(http, caller, job["id"])) == 1
    assert runs[0]["status"] == "completed"
    assert runs[0]["workflow_id"].startswith(f"job-{job['id']}-trigger-")
    assert runs[0]["duration_ms"] is not None
    assert webhooks.count(job_tag) == 1


async def test_skip_overlap_skips_while_a_run_is_running(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag(), "slow/2.5", schedule_spec="1s", overlap="skip"))

    await wait_for(lambda: finished(http, caller, job["id"], 2), timeout=30)
    await http.post(f"/api/jobs/{job['id']}/pause", headers=caller.headers)
    current = (await http.get(f"/api/jobs/{job['id']}", headers=caller.headers)).json()

    runs = sorted(await executions(http, caller, job["id"]), key=lambda e: e["started_at"])
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later["started_at"] >= earlier["completed_at"], (earlier, later)
    assert current["schedule"]["runs_skipped_for_overlap"] >= 2


async def test_timeout_marks_the_execution_failed(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag(), "slow/5", timeout_seconds=1, max_retries=0))

    await http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=30)

    assert runs[0]["status"] == "failed"
    assert "timeout" in runs[0]["error_message"].lower()
    assert runs[0]["attempts"] == 1
    assert runs[0]["duration_ms"] < 4000


async def test_failing_action_is_retried_then_failed(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    job_tag = tag()
    job = await create(http, caller, webhook_job(webhooks, job_tag, "fail", max_retries=2))

    await http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=30)
    after = (await http.get(f"/api/jobs/{job['id']}", headers=caller.headers)).json()

    assert runs[0]["status"] == "failed"
    assert runs[0]["attempts"] == 3
    assert "500" in runs[0]["error_message"]
    assert len(runs[0]["result"]["errors"]) == 3
    assert webhooks.count(job_tag) == 3
    assert after["retry_count"] == 2
    assert after["error_message"] == runs[0]["error_message"]


async def test_schedule_deleted_outside_the_api_is_reported(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer, temporal_client: Client
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag()))

    await temporal_client.get_schedule_handle(f"job-{job['id']}").delete()
    shown = (await http.get(f"/api/jobs/{job['id']}", headers=caller.headers)).json()
    listed = (await http.get("/api/jobs", params={"limit": 100}, headers=caller.headers)).json()
    pause = await http.post(f"/api/jobs/{job['id']}/pause", headers=caller.headers)
    repaired = await http.patch(f"/api/jobs/{job['id']}", json={"schedule_spec": "2d"}, headers=caller.headers)

    assert shown["status"] == "schedule_missing"
    assert shown["schedule"] is None
    assert {j["id"]: j["status"] for j in listed["items"]}[job["id"]] == "schedule_missing"
    assert pause.status_code == 409
    assert repaired.status_code == 200, repaired.text
    assert repaired.json()["status"] == "scheduled"
    assert repaired.json()["schedule"] is not None


async def test_pause_in_temporal_is_reflected(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer, temporal_client: Client
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag()))

    await temporal_client.get_schedule_handle(f"job-{job['id']}").pause(note="paused in the UI")
    shown = (await http.get(f"/api/jobs/{job['id']}", headers=caller.headers)).json()

    assert shown["status"] == "paused"
    assert shown["enabled"] is False
    assert shown["schedule"]["note"] == "paused in the UI"


async def test_update_backfill_and_delete(http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer,
                                          temporal_client: Client) -> None:
    job_tag = tag()
    job = await create(http, caller, webhook_job(webhooks, job_tag))

    updated = await http.patch(f"/api/jobs/{job['id']}", json={"schedule_spec": "1h", "name": "hourly"},
                               headers=caller.headers)
    now = datetime.now(UTC)
    backfill = await http.post(f"/api/jobs/{job['id']}/backfill", headers=caller.headers, json={
        "start_at": (now - timedelta(hours=3, minutes=1)).isoformat(), "end_at": now.isoformat()})
    runs = await wait_for(lambda: finished(http, caller, job["id"], 3), timeout=30)
    deleted = await http.delete(f"/api/jobs/{job['id']}", headers=caller.headers)
    shown = (await http.get(f"/api/jobs/{job['id']}", headers=caller.headers)).json()
    listed = (await http.get("/api/jobs", params={"limit": 100}, headers=caller.headers)).json()

    assert updated.json()["name"] == "hourly"
    assert updated.json()["schedule_spec"] == "1h"
    next_runs = [datetime.fromisoformat(t) for t in updated.json()["schedule"]["next_run_times"]]
    assert next_runs[1] - next_runs[0] == timedelta(hours=1)
    assert backfill.status_code == 202
    assert len(runs) == 3
    assert deleted.status_code == 204
    assert shown["status"] == "deleted"
    assert shown["schedule"] is None
    assert job["id"] not in {j["id"] for j in listed["items"]}
    assert len(await executions(http, caller, job["id"])) == 3
    with pytest.raises(Exception, match="not found|NotFound"):
        await temporal_client.get_schedule_handle(f"job-{job['id']}").describe()


async def test_chat_job_answers_in_its_conversation(
    http: httpx.AsyncClient, caller: Caller, script: Script, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    job = await create(http, caller, {"name": "daily tip", "job_type": "cron", "schedule_spec": "0 9 * * *",
                                      "action": {"type": "chat", "params": {"prompt": "Give me a tip."}}})

    await http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=60)

    assert runs[0]["status"] == "completed", runs[0]
    conversation_id = job["action"]["params"]["conversation_id"]
    assert runs[0]["result"]["conversation_id"] == conversation_id
    async with session_factory() as session:
        messages = list(await session.scalars(select(Message).where(
            Message.conversation_id == uuid.UUID(conversation_id)).order_by(Message.created_at)))
    assert [(m.role, m.status) for m in messages] == [("user", "completed"), ("assistant", "completed")]
    assert messages[0].content == "Give me a tip."
    assert str(messages[1].id) == runs[0]["result"]["message_id"]


@pytest.mark.parametrize(("fields", "field", "expected"), [
    ({"job_type": "cron", "schedule_spec": "* * *"}, "schedule_spec", "five-field cron"),
    ({"job_type": "cron", "schedule_spec": "61 * * * *"}, "schedule_spec", "Minute is not in range"),
    ({"job_type": "interval", "schedule_spec": "15x"}, "schedule_spec", "not an interval"),
    ({"job_type": "interval", "schedule_spec": "P1Q"}, "schedule_spec", "ISO 8601"),
    ({"job_type": "interval", "schedule_spec": "0s"}, "schedule_spec", "between 1 second"),
    ({"job_type": "interval", "schedule_spec": "P1M"}, "schedule_spec", "no fixed length"),
    ({"job_type": "cron", "schedule_spec": "0 9 * * 1#2"}, "schedule_spec", "nth weekday"),
    ({"job_type": "cron", "schedule_spec": "0 9 31 2 *"}, "schedule_spec", "never matches"),
    ({"action": {"type": "chat", "params": {"prompt": "x", "conversation_id": "nope"}}},
     "action.params.conversation_id", "UUID"),
    ({"job_type": "cron", "schedule_spec": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone",
     "unknown time zone"),
    ({"job_type": "one_time", "schedule_spec": None, "scheduled_at": "2020-01-01T00:00:00Z"}, "scheduled_at",
     "in the past"),
    ({"job_type": "one_time", "schedule_spec": None}, "scheduled_at", "needs scheduled_at"),
    ({"job_type": "one_time", "schedule_spec": None, "scheduled_at": "2030-01-01T00:00:00"}, "scheduled_at",
     "timezone"),
    ({"action": {"type": "teleport"}}, "action.type", "unknown action type"),
    ({"action": {"type": "chat", "params": {}}}, "action.params.prompt", "Field required"),
    ({"action": {"type": "webhook", "params": {"url": "ftp://x"}}}, "action.params.url", "URL scheme"),
    ({"overlap": "sometimes"}, "overlap", "skip"),
    ({"action": {"type": "chat", "params": {"prompt": "hi\u0000there"}}}, "action.params", "NUL"),
    ({"action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/", "json_body": {"a": "\udc00"}}}},
     "action.params", "lone surrogate"),
    ({"action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/", "headers": {"Host": "x"}}}},
     "action.params.headers", "cannot be set"),
    ({"job_type": "cron", "schedule_spec": "* * * * *\u0000"}, "schedule_spec", "control"),
    ({"job_type": "interval", "schedule_spec": "9" * 150 + "d"}, "schedule_spec", "not an interval"),
    ({"job_type": "interval", "schedule_spec": "\u0665s"}, "schedule_spec", "not an interval"),
    ({"job_type": "cron", "schedule_spec": "0 9 * * *", "timezone": "localtime"}, "timezone", "unknown time zone"),
    ({"job_type": "one_time", "schedule_spec": None, "scheduled_at": "9999-12-31T20:00:00-05:00"},
     "scheduled_at", "within 100 years"),
    ({"name": "   "}, "name", "more than whitespace"),
])
async def test_invalid_jobs_are_422(http: httpx.AsyncClient, caller: Caller, fields: dict[str, Any], field: str,
                                    expected: str) -> None:
    body = {"name": "bad", "job_type": "interval", "schedule_spec": "1h",
            "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}}} | fields

    # json.dumps escapes lone surrogates, which httpx's own encoder cannot send.
    response = await http.post("/api/jobs", content=json.dumps(body),
                               headers={**caller.headers, "Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert f"{field}:" in response.json()["message"]
    assert expected in response.json()["message"]


async def test_worker_task_job_runs_on_a_worker(http: httpx.AsyncClient, caller: Caller) -> None:
    bad = await http.post("/api/jobs", headers=caller.headers, json={
        "name": "w", "job_type": "interval", "schedule_spec": "1h",
        "action": {"type": "worker_task", "params": {"task_type": "code_analysis", "payload": {}}}})
    job = await create(http, caller, {
        "name": "nightly analysis", "job_type": "interval", "schedule_spec": "1d",
        "action": {"type": "worker_task", "params": {"task_type": "code_analysis",
                                                     "payload": {"source": "def f():\n    return 1\n"}}}})

    await http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=30)
    task = (await http.get(f"/api/workers/tasks/{runs[0]['result']['task_id']}", headers=caller.headers)).json()

    assert bad.status_code == 422
    assert "action.params.payload.source" in bad.json()["message"]
    assert runs[0]["status"] == "completed", runs[0]
    assert runs[0]["result"]["result"]["functions"][0]["name"] == "f"
    assert task["origin"]["job_id"] == job["id"]
    assert task["status"] == "completed"


async def test_owners_see_their_jobs_and_admins_all(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag()))
    stranger = await make_caller(session_factory)
    admin = await make_caller(session_factory, role="admin")
    reader = await make_caller(session_factory, role="readonly")

    assert (await http.get(f"/api/jobs/{job['id']}", headers=stranger.headers)).status_code == 404
    assert (await http.delete(f"/api/jobs/{job['id']}", headers=stranger.headers)).status_code == 404
    assert (await http.get(f"/api/jobs/{job['id']}/executions", headers=stranger.headers)).status_code == 404
    assert (await http.get(f"/api/jobs/{job['id']}", headers=admin.headers)).status_code == 200
    admin_list = (await http.get("/api/jobs", params={"limit": 100}, headers=admin.headers)).json()
    assert job["id"] in {j["id"] for j in admin_list["items"]}
    stranger_list = (await http.get("/api/jobs", headers=stranger.headers)).json()
    assert stranger_list["total"] == 0
    assert (await http.post("/api/jobs", json=webhook_job(webhooks, tag()), headers=reader.headers)).status_code == 403
    assert (await http.get("/api/jobs", headers=reader.headers)).status_code == 200


async def test_job_creation_is_rate_limited(
    settings: Settings, caller: Caller, webhooks: WebhookServer
) -> None:
    strict = settings.model_copy(update={"jobs_created_per_minute_per_user": 2})
    async with serve_api(strict) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        statuses = []
        # Creations are counted per one-minute window, so five reach a limit of two even across a boundary.
        for _ in range(5):
            response = await client.post("/api/jobs", json=webhook_job(webhooks, tag()), headers=caller.headers)
            statuses.append(response.status_code)
            if response.status_code == 429:
                break

    assert statuses[-1] == 429, statuses
    assert int(response.headers["Retry-After"]) >= 1


class BurnParams(BaseModel):
    megabytes: int = 4


@register_action("test_burn", BurnParams, "Allocate memory and spend CPU, for the measurement test")
def burn(_context: ActionContext, params: BurnParams) -> dict[str, Any]:
    block = bytearray(params.megabytes * 1_048_576)
    total = sum(range(2_000_000))
    return {"allocated": len(block), "total": total}


async def test_plain_function_action_is_measured(http: httpx.AsyncClient, caller: Caller) -> None:
    job = await create(http, caller, {"name": "burn", "job_type": "interval", "schedule_spec": "1d",
                                      "action": {"type": "test_burn", "params": {"megabytes": 4}}})

    await http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=30)

    assert runs[0]["status"] == "completed", runs[0]
    assert runs[0]["result"]["allocated"] == 4 * 1_048_576
    assert runs[0]["cpu_seconds"] > 0
    assert runs[0]["peak_memory_bytes"] >= 4 * 1_048_576


async def test_spec_changed_in_temporal_is_reflected(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer, temporal_client: Client
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag(), schedule_spec="1h"))

    def every_seven_hours(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = current.description.schedule
        schedule.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=7))])
        return ScheduleUpdate(schedule=schedule)

    await temporal_client.get_schedule_handle(f"job-{job['id']}").update(every_seven_hours)
    shown = (await http.get(f"/api/jobs/{job['id']}", headers=caller.headers)).json()

    next_runs = [datetime.fromisoformat(t) for t in shown["schedule"]["next_run_times"]]
    assert next_runs[1] - next_runs[0] == timedelta(hours=7)
    assert shown["status"] == "scheduled"


async def test_triggers_in_one_second_each_run(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    job_tag = tag()
    job = await create(http, caller, webhook_job(webhooks, job_tag))

    responses = await asyncio.gather(*(http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
                                       for _ in range(3)))
    await wait_for(lambda: finished(http, caller, job["id"], 3), timeout=30)

    assert [r.status_code for r in responses] == [202, 202, 202]
    assert webhooks.count(job_tag) == 3


async def test_refused_address_fails_at_once(
    settings: Settings, caller: Caller, webhooks: WebhookServer
) -> None:
    strict = settings.model_copy(update={"http_allow_private_addresses": False})
    async with serve_api(strict) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/api/jobs", json=webhook_job(webhooks, tag()), headers=caller.headers)

    assert response.status_code == 422
    assert "PAF_HTTP_ALLOW_PRIVATE_ADDRESSES" in response.json()["message"]


async def test_cancelled_run_is_recorded_as_cancelled(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer, temporal_client: Client
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag(), "slow/20", max_retries=0))
    await http.post(f"/api/jobs/{job['id']}/trigger", headers=caller.headers)
    running = await wait_for(lambda: _running_execution(http, caller, job["id"]), timeout=30)

    await temporal_client.get_workflow_handle(running["workflow_id"]).cancel()
    runs = await wait_for(lambda: finished(http, caller, job["id"], 1), timeout=30)

    assert runs[0]["status"] == "cancelled"


async def _running_execution(http: httpx.AsyncClient, caller: Caller, job_id: str) -> dict[str, Any] | None:
    runs = await executions(http, caller, job_id)
    return runs[0] if runs and runs[0]["status"] == "running" else None


async def test_cron_backfill_is_counted_and_capped(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer
) -> None:
    job = await create(http, caller, webhook_job(webhooks, tag(), job_type="cron", schedule_spec="* * * * *"))
    now = datetime.now(UTC)

    too_many = await http.post(f"/api/jobs/{job['id']}/backfill", headers=caller.headers, json={
        "start_at": (now - timedelta(days=2)).isoformat(), "end_at": now.isoformat()})
    await http.delete(f"/api/jobs/{job['id']}", headers=caller.headers)

    assert too_many.status_code == 422
    assert "fewer than 1000" in too_many.json()["message"]


async def test_admin_edit_keeps_the_owners_conversation(
    http: httpx.AsyncClient, caller: Caller, webhooks: WebhookServer,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    admin = await make_caller(session_factory, role="admin")
    job = await create(http, caller, webhook_job(webhooks, tag()))

    edited = await http.patch(f"/api/jobs/{job['id']}", headers=admin.headers,
                              json={"action": {"type": "chat", "params": {"prompt": "hello"}}})
    conversation = await http.get(f"/api/chat/conversations/{edited.json()['action']['params']['conversation_id']}",
                                  headers=caller.headers)
    nulled = await http.patch(f"/api/jobs/{job['id']}", json={"name": None}, headers=caller.headers)

    assert edited.status_code == 200, edited.text
    assert conversation.status_code == 200
    assert nulled.status_code == 422


async def test_deactivated_owners_jobs_do_not_run(
    http: httpx.AsyncClient, webhooks: WebhookServer, session_factory: async_sessionmaker[AsyncSession],
) -> None:
    owner = await make_caller(session_factory)
    admin = await make_caller(session_factory, role="admin")
    job_tag = tag()
    job = await create(http, owner, webhook_job(webhooks, job_tag, schedule_spec="1s"))

    await http.patch(f"/api/users/{owner.user_id}", json={"is_active": False}, headers=admin.headers)
    await asyncio.sleep(1.5)
    count_after_deactivation = webhooks.count(job_tag)
    await asyncio.sleep(3)

    assert webhooks.count(job_tag) == count_after_deactivation
    assert (await http.get(f"/api/jobs/{job['id']}", headers=admin.headers)).status_code == 200
    await http.delete(f"/api/jobs/{job['id']}", headers=admin.headers)


@pytest.mark.parametrize("address", ["100.64.0.1", "192.0.0.8", "2002:7f00:1::", "::ffff:127.0.0.1", "10.1.2.3",
                                     "64:ff9b::7f00:1"])
def test_webhook_refuses_non_global_addresses(address: str) -> None:
    with pytest.raises(ActionRejected):
        check_address(address, allow_private=False)


async def test_jobs_per_user_are_capped(
    settings: Settings, caller: Caller, webhooks: WebhookServer, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_caller(session_factory)
    async with serve_api(settings.model_copy(update={"max_jobs_per_user": 2})) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as client:
        statuses = [(await client.post("/api/jobs", json=webhook_job(webhooks, tag()), headers=owner.headers))
                    .status_code for _ in range(3)]

    assert statuses == [201, 201, 409]
