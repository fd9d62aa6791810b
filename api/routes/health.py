"""Health of the API's dependencies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from api.deps import StateDep
from api.permissions import public
from api.schemas import CheckResult, HealthOut

router = APIRouter(prefix="/api", tags=["health"], dependencies=[public()])

CHECK_TIMEOUT_SECONDS = 3.0


async def _timed(check: Callable[[], Awaitable[object]]) -> CheckResult:
    started = time.monotonic()
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return CheckResult(ok=False, latency_ms=None, error=f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s")
    except Exception as error:  # noqa: BLE001 - a health check reports every failure instead of raising
        return CheckResult(ok=False, latency_ms=None, error=f"{type(error).__name__}: {str(error)[:300]}")
    return CheckResult(ok=True, latency_ms=round((time.monotonic() - started) * 1000, 1))


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut, "description": "PostgreSQL or Temporal is down"}})
async def health(state: StateDep, response: Response) -> HealthOut:
    """Check PostgreSQL, Temporal and every configured provider; 503 when PostgreSQL or Temporal is down."""

    async def database() -> None:
        async with state.session_factory() as session:
            await session.execute(text("SELECT 1"))

    async def temporal() -> None:
        await state.temporal.service_client.check_health()

    names = [model.name for model in state.settings.models]
    checks = await asyncio.gather(
        _timed(database), _timed(temporal), *(_timed(state.providers.get(name).check) for name in names)
    )
    database_result, temporal_result, provider_results = checks[0], checks[1], checks[2:]
    healthy = database_result.ok and temporal_result.ok
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    if not healthy:
        overall = "unavailable"
    elif all(result.ok for result in provider_results):
        overall = "ok"
    else:
        overall = "degraded"
    return HealthOut(
        status=overall,
        database=database_result,
        temporal=temporal_result,
        providers=dict(zip(names, provider_results, strict=True)),
    )
