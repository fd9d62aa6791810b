"""API key verification cost with 10,000 keys stored, divided by the cost with 1 key.

Verification is a primary-key lookup by the key id in the presented key and a
constant-time hash comparison, so the ratio should stay near 1.0.

Usage: .venv/bin/python bench/auth_keys.py [--keys N] [--checks N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from sqlalchemy import insert  # noqa: E402

from db.engine import create_engine, create_session_factory  # noqa: E402
from db.models import APIKey  # noqa: E402
from db.users import create_api_key, create_user, verify_api_key  # noqa: E402
from devstack import migrate  # noqa: E402
from devstack.postgres import EmbeddedPostgres, create_database  # noqa: E402
from devstack.process import free_port  # noqa: E402


async def time_checks(session_factory, key: str, checks: int) -> float:  # type: ignore[no-untyped-def]
    """Return the median time in ms of one verification, each in its own session as a request does."""
    timings = []
    for _ in range(checks):
        started = time.perf_counter()
        async with session_factory() as session:
            assert await verify_api_key(session, key) is not None
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def run(keys: int, checks: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="paf-keys-"))
    state.chmod(0o755)
    postgres = EmbeddedPostgres(state / "postgres", free_port())
    process = postgres.start()
    try:
        await create_database(postgres.url("postgres"), "paf")
        url = postgres.url("paf")
        await asyncio.to_thread(migrate.upgrade, url)
        engine = create_engine(url)
        session_factory = create_session_factory(engine)
        async with session_factory.begin() as session:
            user = await create_user(session, username="bench", email="bench@example.com", password="bench-pass")
            key = (await create_api_key(session, user.id, "measured")).plaintext

        await time_checks(session_factory, key, 50)
        one = await time_checks(session_factory, key, checks)
        async with session_factory.begin() as session:
            await session.execute(insert(APIKey), [
                {"id": uuid.uuid4(), "name": f"filler {index}", "user_id": user.id,
                 "key_hash": hashlib.sha256(secrets.token_bytes(16)).hexdigest()}
                for index in range(keys - 1)
            ])
        many = await time_checks(session_factory, key, checks)
        await engine.dispose()
    finally:
        process.stop()

    print(f"verification with 1 key stored (baseline): {one:.3f} ms median over {checks} checks")
    print(f"verification with {keys} keys stored: {many:.3f} ms median")
    print(f"ratio: {many / one:.3f} (target: at most 1.5)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000, help="keys stored in the second run")
    parser.add_argument("--checks", type=int, default=1000, help="verifications timed per run")
    args = parser.parse_args()
    asyncio.run(run(args.keys, args.checks))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
