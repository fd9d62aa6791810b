"""A property-based run against the API's own OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import asyncio
import re
import uuid
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from settings import Settings
from tests.conftest import make_caller, serve_api

SCHEMATHESIS = Path(sys.executable).parent / "st"
EXAMPLES_PER_OPERATION = 15


async def run_schemathesis(api_url: str, report: Path, headers: list[str]) -> tuple[int, str]:
    """Run schemathesis against the API at `api_url` and return its exit status and output."""
    arguments = [
        "run", f"{api_url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--seed", "20261204",
        "--workers", "2",
        "--request-timeout", "60",
        "--generation-database", "none",
        "--report", "junit", "--report-junit-path", str(report),
        "--no-color",
    ]
    for header in headers:
        arguments += ["--header", header]
    # A child process, so that this event loop keeps serving the API and the worker meanwhile.
    # Its working directory is the report's, where it may leave a cache folder.
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), *arguments, cwd=report.parent, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("credential", ["admin key", "none"])
async def test_no_input_causes_a_server_error(
    api_url: str, settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path,
    credential: str,
) -> None:
    headers = []
    if credential == "admin key":
        admin = await make_caller(session_factory, role="admin")
        headers.append(f"X-API-Key: {admin.api_key}")
    # The generated worker tasks go to queues that no worker polls, so they cannot keep the test
    # workers busy for later tests. They fail after a short wait.
    fuzz_settings = settings.model_copy(update={"capability_queue_prefix": f"fuzz-{uuid.uuid4().hex[:8]}-",
                                                "worker_task_wait_seconds": 5.0})

    async with serve_api(fuzz_settings) as fuzz_url:
        code, output = await run_schemathesis(fuzz_url, tmp_path / "junit.xml", headers)

    assert code == 0, output[-6000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary is not None, output[-3000:]
    assert summary.group(1) == summary.group(2)
    assert int(summary.group(1)) > 500
