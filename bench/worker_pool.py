"""Worker task throughput with two worker processes serving one capability, divided by the figure with one.

Each task is an http_fetch of a local server that waits before it responds, so
the tasks wait on I/O and a second worker should nearly double the rate. The
wait is long enough (2 s by default) that the capability workers, not the
core worker or the Temporal dev server, limit the rate.

Usage: .venv/bin/python bench/worker_pool.py [--tasks N] [--delay SECONDS] [--concurrency N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import httpx  # noqa: E402

from bench.stack import BenchStack, bench_stack, run_benchmark  # noqa: E402
from devstack.process import ManagedProcess  # noqa: E402
from tests.support.webhook_server import start_webhook_server  # noqa: E402

CAPABILITY = "http_fetch"


async def run_tasks(stack: BenchStack, client: httpx.AsyncClient, url: str, tasks: int) -> float:
    """Create `tasks` fetch tasks and return tasks per second until the last one ends."""
    headers = {"X-API-Key": stack.api_key}
    started = time.perf_counter()
    created = await asyncio.gather(*(
        client.post("/api/workers/tasks", headers=headers, json={"task_type": CAPABILITY, "payload": {"url": url}})
        for _ in range(tasks)))
    ids = [response.raise_for_status().json()["id"] for response in created]
    pending = set(ids)
    while pending:
        await asyncio.sleep(0.05)
        page = (await client.get("/api/workers/tasks", headers=headers,
                                 params={"task_type": CAPABILITY, "limit": 100})).json()
        for task in page["items"]:
            if task["status"] in ("completed", "failed"):
                if task["status"] == "failed":
                    raise RuntimeError(f"task {task['id']} failed: {task['error_message']}")
                pending.discard(task["id"])
    return tasks / (time.perf_counter() - started)


def start_workers(stack: BenchStack, count: int, concurrency: int, round_name: str) -> list[ManagedProcess]:
    env = {**stack.env, "PAF_WORKER_MAX_CONCURRENT_TASKS": str(concurrency)}
    workers = []
    for index in range(count):
        name = f"{round_name}-{index}"
        worker = ManagedProcess(name, [sys.executable, str(PROJECT_ROOT / "temporal-worker.py"), "--name", name,
                                       "--capabilities", CAPABILITY, "--no-core"],
                                log_path=stack.state / f"{name}.log", env=env, cwd=PROJECT_ROOT)
        worker.start()
        workers.append(worker)
    return workers


async def measure(tasks: int, delay: float, concurrency: int) -> None:
    server = start_webhook_server()
    url = f"{server.url}/bench/slow/{delay}"
    extra = {"PAF_HTTP_ALLOW_PRIVATE_ADDRESSES": "true", "PAF_LOG_LEVEL": "WARNING"}
    try:
        # The stack's own worker serves the core queue only, so the measured workers run every task.
        async with bench_stack(worker_args=["--capabilities", ""], extra_env=extra) as stack, \
                httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
            rates = {}
            for count in (1, 2):
                workers = start_workers(stack, count, concurrency, f"pool{count}")
                await asyncio.sleep(3)  # registration and the first polls
                await run_tasks(stack, client, url, concurrency)  # warm-up
                rates[count] = await run_tasks(stack, client, url, tasks)
                for worker in workers:
                    await asyncio.to_thread(worker.stop)
                print(f"{count} worker(s): {rates[count]:.1f} tasks/s", flush=True)
    finally:
        server.stop()
    print(f"{tasks} http_fetch tasks of {delay * 1000:.0f} ms each, {concurrency} at a time per worker")
    print(f"throughput ratio (two workers / one worker): {rates[2] / rates[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    run_benchmark(measure(args.tasks, args.delay, args.concurrency))


if __name__ == "__main__":
    main()
