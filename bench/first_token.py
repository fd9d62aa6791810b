"""First-token overhead: request to first `content` event, minus the provider's own time to its first token.

The provider's time to the first answer token is what the model needs in any
case: the Understand and Plan calls, then the Execute call up to its first
token. The rest is what the orchestration adds before the user sees text.
The reference line runs the relay part of the same path through
`temporalio.contrib.workflow_streams` on the same servers, in the same run.

Usage: .venv/bin/python bench/first_token.py [--turns N] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from stack import bench_stack, run_benchmark  # type: ignore[import-not-found]
from stream_relay import relay_latencies  # type: ignore[import-not-found]
from tests.helpers import collect_stream
from tests.support.scripted_provider import Script


async def run(turns: int, latency: float) -> None:
    async with bench_stack() as stack:
        stack.provider.reset(Script(call_latency=latency, token_delay=0.01))
        headers = {"X-API-Key": stack.api_key}
        overheads: list[float] = []
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
            await collect_stream(http, headers, {"message": "warm-up"})
            for index in range(turns):
                stack.provider.calls.clear()
                started = time.monotonic()
                events = await collect_stream(http, headers, {"message": f"question {index}"})
                first_content = next(e.received_at for e in events if e.event == "content")
                calls = sorted(stack.provider.calls, key=lambda c: c.started)
                answer = next(c for c in calls if c.body.get("stream"))
                before = sum(c.finished - c.started for c in calls if c.started < answer.started and c.finished)
                provider_first = before + (answer.first_token_sent - answer.started)
                overheads.append((first_content - started - provider_first) * 1000)

        ours, reference = await relay_latencies(stack.database_url, stack.temporal_address, tokens=200)
        p50 = statistics.median(overheads)
        print(f"turns: {turns}, provider latency per call: {latency * 1000:.0f} ms")
        print(f"first-token overhead: p50 {p50:.1f} ms, max {max(overheads):.1f} ms (target: at most 50 ms)")
        print(f"relay part, PostgreSQL NOTIFY: p50 {ours:.1f} ms; workflow_streams: p50 {reference:.1f} ms")
        print(f"first-token overhead with workflow_streams as the relay (derived): p50 "
              f"{p50 - ours + reference:.1f} ms; ratio ours / reference: {p50 / (p50 - ours + reference):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20, help="measured turns (default 20)")
    parser.add_argument("--latency", type=float, default=0.2, help="provider latency per call in seconds")
    args = parser.parse_args()
    run_benchmark(run(args.turns, args.latency))
    return 0


if __name__ == "__main__":
    main()
