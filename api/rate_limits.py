"""Per-user and per-key limits on starting chat turns."""

from __future__ import annotations

import math
import uuid

from fastapi import HTTPException, status

from api.deps import AppState
from db.rate_limits import count_request

WINDOW_SECONDS = 60


async def check_chat_rate(state: AppState, user_id: uuid.UUID, key_id: uuid.UUID | None) -> None:
    """Count one chat turn for the caller, and raise 429 with Retry-After once a limit is exceeded."""
    limits = [(f"user:{user_id}:chat", state.settings.chat_turns_per_minute_per_user, "user")]
    if key_id is not None:
        limits.append((f"key:{key_id}:chat", state.settings.chat_turns_per_minute_per_key, "API key"))
    async with state.session_factory.begin() as session:
        for counter, limit, subject in limits:
            if limit == 0:
                continue
            window = await count_request(session, counter, WINDOW_SECONDS)
            if window.count > limit:
                retry_after = max(math.ceil(window.seconds_left), 1)
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    f"this {subject} may start {limit} chat turns per minute; retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
