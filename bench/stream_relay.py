"""Token relay: latency and throughput of the event path from an activity to an SSE reader.

Measures, in one run and on the same servers, the path this project uses
(rows in `run_events` announced with PostgreSQL NOTIFY, read by the API's
event hub) and the reference, `temporalio.contrib.workflow_streams`
(Signals to publish, long-poll Updates to subscribe).

- latency: tokens published 10 ms apart; time from publish to arrival at
  the reader, p50 and p99.
- throughput: tokens published as fast as the publisher allows; tokens per
  second arriving at the reader.

Usage: .venv/bin/python bench/stream_relay.py [--tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from temporalio import workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamClient  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402

from activities.streaming import ContentRelay, publish  # noqa: E402
from api.events import EventHub, stream_events  # noqa: E402
from db.engine import create_engine, create_session_factory  # noqa: E402
from devstack import migrate  # noqa: E402
from devstack.postgres import EmbeddedPostgres, create_database  # noqa: E402
from devstack.process import free_port  # noqa: E402
from devstack.temporal import TemporalDevServer  # noqa: E402

LATENCY_INTERVAL = 0.010
OURS = "PostgreSQL NOTIFY (this project)"
REFERENCE = "workflow_streams (reference)"

Publisher = Callable[[str], None]


@workflow.defn(sandboxed=False)
class RelayReferenceWorkflow:
    """Hosts a workflow stream until signalled to finish."""

    @workflow.init
    def __init__(self) -> None:
        self.stream = WorkflowStream()
        self.finished = False

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.finished)


def summarise(name: str, sent: dict[int, float], received: dict[int, float], throughput: float) -> dict[str, float]:
    delays = sorted((received[i] - sent[i]) * 1000 for i in sent)
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"{name:<34} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   throughput {throughput:9.0f} tokens/s")
    return {"p50": p50, "p99": p99, "throughput": throughput}


async def measure(
    publish_all: Callable[[int, float], Awaitable[dict[int, float]]],
    receive_all: Callable[[int], Awaitable[dict[int, float]]],
    count: int,
    interval: float,
) -> tuple[dict[int, float], dict[int, float], float]:
    reader = asyncio.create_task(receive_all(count))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    sent = await publish_all(count, interval)
    received = await asyncio.wait_for(reader, timeout=300)
    return sent, received, count / (max(received.values()) - started)


def parse_tokens(text: str) -> list[int]:
    return [int(part[1:]) for part in text.split() if part.startswith("t")]


async def postgres_path(database_url: str, client: Client, count: int, interval: float):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    session_factory = create_session_factory(engine)
    hub = EventHub(database_url)
    await hub.start()
    request_id = uuid.uuid4()

    async def publish_all(n: int, pause: float) -> dict[int, float]:
        relay = ContentRelay(session_factory, request_id, 0)
        sent: dict[int, float] = {}
        for i in range(n):
            sent[i] = time.monotonic()
            relay.push(f"t{i} ")
            await asyncio.sleep(pause)
        await relay.close()
        await publish(session_factory, request_id, "done", {})
        return sent

    async def receive_all(n: int) -> dict[int, float]:
        received: dict[int, float] = {}
        async for event in stream_events(hub=hub, session_factory=session_factory, client=client,
                                         request_id=request_id):
            now = time.monotonic()
            if event.event == "content":
                for i in parse_tokens(json.loads(event.data)["delta"]):
                    received[i] = now
        return received

    try:
        return await measure(publish_all, receive_all, count, interval)
    finally:
        await hub.stop()
        await engine.dispose()


async def workflow_streams_path(client: Client, task_queue: str, count: int, interval: float):  # type: ignore[no-untyped-def]
    workflow_id = f"relay-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(RelayReferenceWorkflow.run, id=workflow_id, task_queue=task_queue)

    async def publish_all(n: int, pause: float) -> dict[int, float]:
        sent: dict[int, float] = {}
        publisher = WorkflowStreamClient.create(client, workflow_id, batch_interval=timedelta(milliseconds=10))
        tokens = publisher.topic("tokens", type=str)
        async with publisher:
            for i in range(n):
                sent[i] = time.monotonic()
                # Per-token flushes give the lowest latency; the throughput run lets batches form.
                tokens.publish(f"t{i} ", force_flush=pause > 0)
                await asyncio.sleep(pause)
        await handle.signal(RelayReferenceWorkflow.finish)
        return sent

    async def receive_all(n: int) -> dict[int, float]:
        received: dict[int, float] = {}
        subscriber = WorkflowStreamClient.create(client, workflow_id)
        async for item in subscriber.subscribe(["tokens"], result_type=str):
            now = time.monotonic()
            for i in parse_tokens(item.data):
                received[i] = now
            if len(received) >= n:
                break
        return received

    return await measure(publish_all, receive_all, count, interval)


async def compare_paths(database_url: str, temporal_address: str, tokens: int) -> dict[str, dict[str, float]]:
    """Measure both relay paths on running servers; return p50, p99 and throughput by path name."""
    client = await Client.connect(temporal_address)
    task_queue = f"relay-{uuid.uuid4().hex[:8]}"
    results = {}
    async with Worker(client, task_queue=task_queue, workflows=[RelayReferenceWorkflow],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        for name, path in [
            (OURS, lambda n, pause: postgres_path(database_url, client, n, pause)),
            (REFERENCE, lambda n, pause: workflow_streams_path(client, task_queue, n, pause)),
        ]:
            sent, received, _ = await path(tokens, LATENCY_INTERVAL)
            _, _, throughput = await path(tokens * 5, 0.0)
            results[name] = summarise(name, sent, received, throughput)
    return results


async def relay_latencies(database_url: str, temporal_address: str, tokens: int) -> tuple[float, float]:
    """Return the p50 relay latency in ms of this project's path and of workflow_streams."""
    results = await compare_paths(database_url, temporal_address, tokens)
    return results[OURS]["p50"], results[REFERENCE]["p50"]


async def run(tokens: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="paf-relay-"))
    state.chmod(0o755)
    postgres = EmbeddedPostgres(state / "postgres", free_port())
    processes = [postgres.start()]
    try:
        await create_database(postgres.url("postgres"), "paf")
        database_url = postgres.url("paf")
        await asyncio.to_thread(migrate.upgrade, database_url)
        temporal = TemporalDevServer(log_path=state / "temporal.log", port=free_port(), ui_port=None)
        processes.append(temporal.start())
        print(f"{tokens} tokens; latency run publishes every {LATENCY_INTERVAL * 1000:.0f} ms")
        results = await compare_paths(database_url, temporal.address, tokens)
        ours, reference = results[OURS], results[REFERENCE]
        print(f"ratio to reference: p50 latency {ours['p50'] / reference['p50']:.3f}, "
              f"throughput {ours['throughput'] / reference['throughput']:.2f}")
    finally:
        for process in reversed(processes):
            process.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=300, help="tokens in the latency run (x5 for throughput)")
    args = parser.parse_args()
    asyncio.run(run(args.tokens))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
