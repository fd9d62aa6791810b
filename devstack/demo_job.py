"""The demonstration job of `make run`: a recurring chat turn, triggered once at start."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import httpx

DEMO_JOB_NAME = "demo: commit message tip"
DEMO_PROMPT = "Give one short tip for writing a clear git commit message."
DEMO_INTERVAL = "30m"
FIRST_RUN_TIMEOUT_SECONDS = 180.0


async def ensure_demo_job(api_url: str, api_key: str) -> tuple[dict[str, Any], bool]:
    """Create the demonstration job unless the key's user has it, and trigger one run unless it is paused.

    Return the job and whether a run was triggered. A schedule deleted in the
    Temporal UI is created again.
    """
    headers = {"X-API-Key": api_key}
    async with httpx.AsyncClient(base_url=api_url, timeout=60, headers=headers) as client:
        me = (await client.get("/api/users/me")).raise_for_status().json()
        job = await _find_own_job(client, me["id"])
        if job is None:
            response = await client.post("/api/jobs", json={
                "name": DEMO_JOB_NAME, "job_type": "interval", "schedule_spec": DEMO_INTERVAL,
                "action": {"type": "chat", "params": {"prompt": DEMO_PROMPT}}, "max_retries": 1,
            })
            job = response.raise_for_status().json()
        elif job["status"] == "schedule_missing":
            job = (await client.patch(f"/api/jobs/{job['id']}", json={})).raise_for_status().json()
        if job["status"] == "paused":
            return job, False
        (await client.post(f"/api/jobs/{job['id']}/trigger")).raise_for_status()
    return job, True


async def _find_own_job(client: httpx.AsyncClient, user_id: str) -> dict[str, Any] | None:
    offset = 0
    while True:
        page = (await client.get("/api/jobs", params={"limit": 100, "offset": offset})).raise_for_status().json()
        for item in page["items"]:
            if item["name"] == DEMO_JOB_NAME and item["user_id"] == user_id:
                return dict(item)
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return None


async def wait_for_run(
    api_url: str, api_key: str, job_id: str, started_after: datetime
) -> dict[str, Any] | None:
    """Return the first run that started after `started_after` once it ends, or None on timeout."""
    deadline = time.monotonic() + FIRST_RUN_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers={"X-API-Key": api_key}) as client:
        while time.monotonic() < deadline:
            page = (await client.get(f"/api/jobs/{job_id}/executions")).raise_for_status().json()
            for run in page["items"]:
                if datetime.fromisoformat(run["started_at"]) >= started_after and run["status"] != "running":
                    return dict(run)
            await asyncio.sleep(1)
    return None
