"""The status of a chat turn, read from Temporal and from its records."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.schemas import PhaseTimingOut, RunStatus
from db.models import Message, UPEESession
from workflows.upee_types import UPEEProgress

logger = logging.getLogger(__name__)

WORKFLOW_STATUSES = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}
# Used when Temporal no longer keeps the run (after its retention period).
MESSAGE_STATUSES = {"completed": "completed", "failed": "failed", "cancelled": "cancelled", "streaming": "running"}


def _timings(phases: dict[str, Any]) -> list[PhaseTimingOut]:
    records = sorted(phases.values(), key=lambda record: (record.get("refinement", 0),
                                                          ("understand", "plan", "execute", "evaluate").index(
                                                              record.get("phase", "evaluate"))))
    return [PhaseTimingOut(phase=r.get("phase", "?"), refinement=r.get("refinement", 0),
                           duration_ms=r.get("duration_ms")) for r in records]


def _usage(phases: dict[str, Any]) -> dict[str, int]:
    total = {"input_tokens": 0, "output_tokens": 0}
    for record in phases.values():
        for key in total:
            total[key] += int((record.get("usage") or {}).get(key, 0))
    return total


async def workflow_status(client: Client, workflow_id: str) -> str | None:
    """Return the run's status in this API's words, or None when Temporal no longer has the run."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return WORKFLOW_STATUSES.get(description.status, "running") if description.status else "running"


async def _workflow_state(client: Client, workflow_id: str) -> tuple[str | None, UPEEProgress | None]:
    handle = client.get_workflow_handle(workflow_id)
    status = await workflow_status(client, workflow_id)
    progress = None
    if status == "running":
        try:
            progress = await handle.query("progress", result_type=UPEEProgress)
        except RPCError as error:
            # A run whose first workflow task has not run yet has no query handler.
            logger.info("progress query of %s failed: %s", workflow_id, error)
    return status, progress


async def run_status(client: Client, upee: UPEESession, answer: Message | None) -> RunStatus:
    """Combine Temporal's view of the run with the phases and answer stored in PostgreSQL."""
    # The session's status is final once the turn's last activity has run, a moment before the
    # workflow closes. Temporal is queried only while the session is running, which also catches terminated runs.
    status, progress = upee.status, None
    if status == "running":
        status, progress = await _workflow_state(client, f"upee-{upee.request_id}")
    if status is None:
        status = MESSAGE_STATUSES.get(answer.status, "failed") if answer is not None else "failed"
    phases = upee.phases_data or {}
    error = (answer.metadata_ or {}).get("error") if answer is not None else None
    refinements = max((int(r.get("refinement", 0)) for r in phases.values()), default=0)
    return RunStatus(
        request_id=upee.request_id,
        conversation_id=upee.conversation_id,
        status=status,
        phase=progress.phase if progress is not None and status == "running" else None,
        message_id=answer.id if answer is not None else None,
        quality_score=upee.quality_score,
        refinements=refinements,
        timings=_timings(phases),
        usage=_usage(phases),
        error=error,
        created_at=upee.created_at,
    )


async def cancel_run(client: Client, request_id: uuid.UUID) -> str:
    """Request cancellation of the run if it is running; return its status before the request."""
    status, _ = await _workflow_state(client, f"upee-{request_id}")
    if status != "running":
        return status or "unknown"
    try:
        await client.get_workflow_handle(f"upee-{request_id}").cancel()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # The run closed between the status check and the cancel request.
        return "completed"
    logger.info("cancellation requested for run %s", request_id)
    return status
