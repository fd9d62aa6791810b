"""Turn overhead: a UPEE turn's wall time divided by the provider time of its LLM calls.

The scripted provider replies to every call after a fixed latency (200 ms by
default), so the ratio shows what the orchestration (API, Temporal, worker,
PostgreSQL, event relay) adds on top of the model. 1.0 would be no overhead.

Usage: .venv/bin/python bench/turn_overhead.py [--turns N] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from stack import bench_stack, run_benchmark  # type: ignore[import-not-found]
from tests.helpers import collect_stream
from tests.support.scripted_provider import Script


async def run(turns: int, latency: float) -> None:
    async with bench_stack() as stack:
        stack.provider.reset(Script(call_latency=latency))
        headers = {"X-API-Key": stack.api_key}
        ratios: list[float] = []
        turn_times: list[float] = []
        provider_times: list[float] = []
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
            await collect_stream(http, headers, {"message": "warm-up"})
            for index in range(turns):
                stack.provider.calls.clear()
                started = time.monotonic()
                events = await collect_stream(http, headers, {"message": f"question {index}"})
                elapsed = time.monotonic() - started
                assert events[-2].event == "complete", events[-2]
                provider_time = sum(c.finished - c.started for c in stack.provider.calls if c.finished)
                turn_times.append(elapsed)
                provider_times.append(provider_time)
                ratios.append(elapsed / provider_time)

        calls = len(stack.provider.calls)
        print(f"turns: {turns}, provider calls per turn: {calls}, latency per call: {latency * 1000:.0f} ms")
        print(f"provider time per turn (baseline), median: {statistics.median(provider_times) * 1000:.0f} ms")
        print(f"turn time, median: {statistics.median(turn_times) * 1000:.0f} ms")
        print(f"added per turn, median: {(statistics.median(turn_times) - statistics.median(provider_times)) * 1000:.0f} ms")
        print(f"turn overhead ratio (turn time / provider time): median {statistics.median(ratios):.3f}, "
              f"max {max(ratios):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20, help="measured turns (default 20)")
    parser.add_argument("--latency", type=float, default=0.2, help="provider latency per call in seconds")
    args = parser.parse_args()
    run_benchmark(run(args.turns, args.latency))
    return 0


if __name__ == "__main__":
    main()
