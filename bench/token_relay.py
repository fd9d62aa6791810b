"""Token relay through the whole system: added latency per token and the most tokens per second one stream carries.

The scripted provider records when it sends each token, and the SSE client
when it receives it; both run in this process, so one clock measures the
path provider -> worker -> PostgreSQL -> API -> client. The reference line
measures the relay part through `temporalio.contrib.workflow_streams` on the
same servers, in the same run.

Usage: .venv/bin/python bench/token_relay.py [--tokens N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from stack import bench_stack, run_benchmark  # type: ignore[import-not-found]
from stream_relay import compare_paths  # type: ignore[import-not-found]
from tests.helpers import collect_stream
from tests.support.scripted_provider import Script


def token_index(text: str) -> list[int]:
    return [int(part[1:]) for part in text.split() if part.startswith("k")]


async def latency_run(http: httpx.AsyncClient, headers: dict[str, str], stack, tokens: int) -> list[float]:  # type: ignore[no-untyped-def]
    stack.provider.reset(Script(answer_tokens=[f" k{i}" for i in range(tokens)], token_delay=0.02))
    events = await collect_stream(http, headers, {"message": "latency"}, timeout=300)
    answer = next(c for c in stack.provider.calls if c.body.get("stream"))
    delays = []
    for event in events:
        if event.event == "content":
            for index in token_index(event.data["delta"]):
                delays.append((event.received_at - answer.token_times[index]) * 1000)
    return sorted(delays)


async def throughput_run(http: httpx.AsyncClient, headers: dict[str, str], stack, tokens: int) -> float:  # type: ignore[no-untyped-def]
    stack.provider.reset(Script(answer_tokens=[f" k{i}" for i in range(tokens)]))
    events = await collect_stream(http, headers, {"message": "throughput"}, timeout=300)
    contents = [e for e in events if e.event == "content"]
    received = sum(len(token_index(e.data["delta"])) for e in contents)
    assert received == tokens, (received, tokens)
    return tokens / (contents[-1].received_at - contents[0].received_at)


async def run(tokens: int) -> None:
    async with bench_stack() as stack:
        headers = {"X-API-Key": stack.api_key}
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=300) as http:
            await collect_stream(http, headers, {"message": "warm-up"})
            delays = await latency_run(http, headers, stack, tokens)
            started = time.monotonic()
            throughput = await throughput_run(http, headers, stack, tokens * 20)
            elapsed = time.monotonic() - started
        reference = await compare_paths(stack.database_url, stack.temporal_address, 200)

    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    ref = reference["workflow_streams (reference)"]
    print(f"latency run: {tokens} tokens 20 ms apart; throughput run: {tokens * 20} tokens ({elapsed:.1f} s)")
    print(f"added latency per token: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target: p50 at most 10 ms)")
    print(f"tokens per second on one stream: {throughput:.0f} (target: at least 2,000)")
    print(f"reference relay (workflow_streams): p50 {ref['p50']:.1f} ms, p99 {ref['p99']:.1f} ms, "
          f"{ref['throughput']:.0f} tokens/s")
    print(f"ratio to reference: p50 latency {p50 / ref['p50']:.3f}, throughput {throughput / ref['throughput']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens in the latency run (x20 for throughput)")
    args = parser.parse_args()
    run_benchmark(run(args.tokens))
    return 0


if __name__ == "__main__":
    main()
