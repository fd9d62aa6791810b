"""Long conversations: a turn's time in a conversation of 10,000 messages divided by its time in a new one.

The history sent to the model is bounded by the model's context window and
only ids travel through Temporal, so the ratio should stay near 1.0.

Usage: .venv/bin/python bench/long_conversation.py [--turns N] [--messages N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import httpx
from sqlalchemy import insert

from db.engine import create_engine, create_session_factory
from db.models import Message
from stack import bench_stack, run_benchmark  # type: ignore[import-not-found]
from tests.helpers import collect_stream
from tests.support.scripted_provider import Script


async def fill(database_url: str, conversation_id: uuid.UUID, count: int) -> None:
    engine = create_engine(database_url, pool_size=1)
    async with create_session_factory(engine).begin() as session:
        await session.execute(insert(Message), [
            {"conversation_id": conversation_id, "role": "user" if index % 2 == 0 else "assistant",
             "content": f"message {index} " + "z" * 200}
            for index in range(count)
        ])
    await engine.dispose()


async def run(turns: int, messages: int) -> None:
    async with bench_stack() as stack:
        stack.provider.reset(Script(call_latency=0.05))
        headers = {"X-API-Key": stack.api_key}
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
            first = await collect_stream(http, headers, {"message": "start"})
            conversation_id = first[0].data["conversation_id"]
            await fill(stack.database_url, uuid.UUID(conversation_id), messages)

            async def timed(body: dict[str, str]) -> float:
                started = time.monotonic()
                events = await collect_stream(http, headers, body)
                assert events[-2].event == "complete", events[-2]
                return time.monotonic() - started

            short, long = [], []
            for index in range(turns):
                short.append(await timed({"message": f"new {index}"}))
                long.append(await timed({"message": f"long {index}", "conversation_id": conversation_id}))

    print(f"turns: {turns} each; long conversation: {messages} messages; provider latency 50 ms per call")
    print(f"turn in a new conversation (baseline), median: {statistics.median(short) * 1000:.0f} ms")
    print(f"turn in the long conversation, median: {statistics.median(long) * 1000:.0f} ms")
    print(f"ratio long / new: {statistics.median(long) / statistics.median(short):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="turns of each kind (default 10)")
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the long conversation")
    args = parser.parse_args()
    run_benchmark(run(args.turns, args.messages))
    return 0


if __name__ == "__main__":
    main()
