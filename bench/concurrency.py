"""Concurrency: 100 turns started together against one worker and one API process.

The scripted provider takes 1 s per call, so a turn needs 4 s of provider
time whatever else runs. The ratio is the wall time of all turns divided by
the time of one turn run alone in the same run; 1.0 would mean the
orchestration adds nothing under load.

Usage: .venv/bin/python bench/concurrency.py [--turns N] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
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
        limits = httpx.Limits(max_connections=turns + 10, max_keepalive_connections=turns + 10)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=600, limits=limits) as http:
            await collect_stream(http, headers, {"message": "warm-up"})
            started = time.monotonic()
            await collect_stream(http, headers, {"message": "alone"})
            alone = time.monotonic() - started

            async def one(index: int) -> float:
                begun = time.monotonic()
                events = await collect_stream(http, headers, {"message": f"question {index}"}, timeout=600)
                assert events[-2].event == "complete", events[-2]
                return time.monotonic() - begun

            started = time.monotonic()
            durations = await asyncio.gather(*(one(index) for index in range(turns)))
            total = time.monotonic() - started

    print(f"provider latency per call: {latency:.1f} s, 4 calls per turn")
    print(f"one turn alone (baseline): {alone:.2f} s")
    print(f"{turns} turns together: {total:.2f} s in all; per turn median {statistics.median(durations):.2f} s, "
          f"max {max(durations):.2f} s")
    print(f"concurrency ratio (all together / one alone): {total / alone:.3f} (target: at most 2.0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100, help="turns started together (default 100)")
    parser.add_argument("--latency", type=float, default=1.0, help="provider latency per call in seconds")
    args = parser.parse_args()
    run_benchmark(run(args.turns, args.latency))
    return 0


if __name__ == "__main__":
    main()
