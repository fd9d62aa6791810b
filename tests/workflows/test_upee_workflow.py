"""The UPEE workflow as Temporal reports it: id, progress query, listing, worker shutdown."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from settings import Settings
from tests.conftest import Caller
from tests.helpers import collect_stream
from tests.support.scripted_provider import Script

PROJECT_ROOT = Path(__file__).resolve().parents[2]


async def test_progress_query_and_listing(
    http: httpx.AsyncClient, caller: Caller, script: Script, temporal_client: Client
) -> None:
    events = await collect_stream(http, caller.headers, {"message": "hello"})
    request_id = events[0].data["request_id"]
    handle = temporal_client.get_workflow_handle(f"upee-{request_id}")

    progress = await handle.query("progress")
    description = await handle.describe()
    listed = [w.id async for w in temporal_client.list_workflows(f"WorkflowId = 'upee-{request_id}'")]

    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert description.workflow_type == "UPEEWorkflow"
    assert progress["status"] == "completed"
    assert [t["phase"] for t in progress["timings"]] == ["understand", "plan", "execute", "evaluate"]
    assert progress["quality_score"] == 0.9
    assert progress["intent"] == "factual question"
    assert listed == [f"upee-{request_id}"]


async def test_workflow_history_holds_no_content(
    http: httpx.AsyncClient, caller: Caller, script: Script, temporal_client: Client
) -> None:
    secret_text = f"marker-{uuid.uuid4().hex}"
    script.answer_tokens = [secret_text]
    events = await collect_stream(http, caller.headers, {"message": f"question {secret_text}"})
    handle = temporal_client.get_workflow_handle(f"upee-{events[0].data['request_id']}")

    history = await handle.fetch_history()

    assert secret_text not in history.to_json()


def test_worker_stops_cleanly_on_sigterm(settings: Settings) -> None:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "PAF_TEMPORAL_ADDRESS": settings.temporal_address,
           "PAF_TEMPORAL_TASK_QUEUE": f"sigterm-{uuid.uuid4().hex[:8]}"}
    worker = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "temporal-worker.py")], env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        output = ""
        deadline = time.monotonic() + 30
        while ") started: core queue" not in output:
            assert time.monotonic() < deadline, output
            line = worker.stderr.readline() if worker.stderr else ""
            assert line or worker.poll() is None, output
            output += line
        worker.send_signal(signal.SIGTERM)
        _, rest = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, rest
    assert re.search(r"worker \S+ stopped", rest), rest
