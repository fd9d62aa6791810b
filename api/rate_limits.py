"""Per-user and per-key limits on starting chat turns and creating jobs."""

from __future__ import annotations

import math
import uuid

from fastapi import HTTPException, status

from api.deps import AppState
from db.rate_limits import count_request, uncount_request

WINDOW_SECONDS = 60


async def check_rate(
    state: AppState, user_id: uuid.UUID, key_id: uuid.UUID | None, counter_name: str, what: str, per_user: int,
    per_key: int,
) -> None:
    """Count one request for the caller, and raise 429 with Retry-After once a limit is exceeded."""
    limits = [(f"user:{user_id}:{counter_name}", per_user, "user")]
    if key_id is not None:
        limits.append((f"key:{key_id}:{counter_name}", per_key, "API key"))
    async with state.session_factory.begin() as session:
        for counter, limit, subject in limits:
            if limit == 0:
                continue
            window = await count_request(session, counter, WINDOW_SECONDS)
            if window.count > limit:
                retry_after = max(math.ceil(window.seconds_left), 1)
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    f"this {subject} may do {limit} {what} per minute. Retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )


async def count_attempt(state: AppState, counter: str, limit: int, what: str) -> None:
    """Count a password attempt before checking it, and raise 429 past `limit` in the window.

    Counting first means parallel guesses cannot all pass while each one's bcrypt check runs.
    """
    if limit == 0:
        return
    async with state.session_factory.begin() as session:
        window = await count_request(session, counter, WINDOW_SECONDS)
    if window.count > limit:
        retry_after = max(math.ceil(window.seconds_left), 1)
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many failed {what}. Retry in {retry_after} s",
                            headers={"Retry-After": str(retry_after)})


async def forgive_attempt(state: AppState, counter: str) -> None:
    """Take back an attempt that succeeded, so only failures count against the limit."""
    async with state.session_factory.begin() as session:
        await uncount_request(session, counter)


async def check_chat_rate(state: AppState, user_id: uuid.UUID, key_id: uuid.UUID | None) -> None:
    settings = state.settings
    await check_rate(state, user_id, key_id, "chat", "chat turns", settings.chat_turns_per_minute_per_user,
                     settings.chat_turns_per_minute_per_key)


async def check_job_rate(state: AppState, user_id: uuid.UUID, key_id: uuid.UUID | None) -> None:
    settings = state.settings
    await check_rate(state, user_id, key_id, "jobs", "job creations", settings.jobs_created_per_minute_per_user,
                     settings.jobs_created_per_minute_per_key)
