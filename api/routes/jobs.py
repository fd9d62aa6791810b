"""Scheduled jobs: create, read, change, pause, resume, trigger, backfill and delete, with their executions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from temporalio.client import ScheduleBackfill, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from api import jobs
from api.deps import SessionDep, StateDep
from api.permissions import ConversationReader, ConversationWriter, sees_everything
from api.rate_limits import check_job_rate
from api.schemas import (
    ActionTypeOut,
    BackfillRequest,
    ExecutionOut,
    JobCreate,
    JobOut,
    JobUpdate,
    Page,
    error_responses,
)
from activities.job_actions import ACTION_TYPES
from db import jobs as job_queries
from db.models import JOB_STATUSES, Conversation, CoreJob, User
from workflows.job_types import JobRunInput
from workflows.jobs import JobWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=error_responses(401, 403, 503))

MAX_OFFSET = 10_000_000
MAX_BACKFILL_RUNS = 1000
MAX_BACKFILL_AGE = timedelta(days=366)


@router.get("/action-types", response_model=list[ActionTypeOut])
async def list_action_types(_user: ConversationReader) -> list[ActionTypeOut]:
    """List the action types jobs can run, with the JSON schema of each one's parameters."""
    return [ActionTypeOut(name=a.name, description=a.description, params_schema=a.params.model_json_schema())
            for a in sorted(ACTION_TYPES.values(), key=lambda a: a.name)]


@router.post("", response_model=JobOut, status_code=status.HTTP_201_CREATED,
             responses=error_responses(404, 422, 429))
async def create_job(body: JobCreate, request: Request, state: StateDep, user: ConversationWriter) -> JobOut:
    """Create a job and its Temporal Schedule `job-<id>`."""
    settings = state.settings
    timezone = body.timezone or "UTC"
    jobs.check_schedule(body.job_type, body.schedule_spec, timezone, body.scheduled_at)
    params = await jobs.check_action(settings, body.action)
    # Counted after validation, so rejected requests do not use up the limit.
    await check_job_rate(state, user.id, getattr(request.state, "key_id", None))
    async with state.session_factory.begin() as session:
        active = await job_queries.count_live_jobs(session, user.id)
        if active >= settings.max_jobs_per_user:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"this user has {active} jobs, the limit (PAF_MAX_JOBS_PER_USER); delete one first")
        if body.action.type == "chat":
            params["conversation_id"] = str(await _job_conversation(session, user, params, body.name))
        job = CoreJob(
            id=uuid.uuid4(), user_id=user.id, name=body.name, job_type=body.job_type,
            schedule_spec=body.schedule_spec, timezone=timezone, scheduled_at=body.scheduled_at,
            action_type=body.action.type, payload=params, overlap=body.overlap or "skip",
            max_retries=jobs.DEFAULT_MAX_RETRIES if body.max_retries is None else body.max_retries,
            timeout_seconds=body.timeout_seconds,
            catchup_window_seconds=body.catchup_window_seconds or settings.job_catchup_window_seconds,
            enabled=True if body.enabled is None else body.enabled,
            status="scheduled" if body.enabled is not False else "paused",
        )
        session.add(job)
        await session.flush()
        await session.refresh(job)
        # Created last, so a rejected schedule rolls the row back with it.
        await jobs.create_schedule(state.temporal, job, settings.temporal_task_queue)
    logger.info("created %s job %s (%s) for user %s", job.job_type, job.id, job.name, user.id)
    try:
        description = await jobs.describe(state.temporal, job)
    except HTTPException as error:
        # The job exists now, and a 503 would invite a retry that creates it twice.
        logger.warning("job %s created, but its schedule could not be read back: %s", job.id, error.detail)
        description = None
    return jobs.job_out(job, description)


async def _job_conversation(session: SessionDep, user: User, params: dict[str, object], name: str) -> uuid.UUID:
    requested = params.get("conversation_id")
    if requested is not None:
        conversation = await session.get(Conversation, uuid.UUID(str(requested)))
        if conversation is None or conversation.user_id != user.id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Conversation {requested} not found")
        return conversation.id
    conversation = Conversation(user_id=user.id, title=f"Job: {name}"[:255])
    session.add(conversation)
    await session.flush()
    return conversation.id


@router.get("", response_model=Page[JobOut])
async def list_jobs(
    request: Request, state: StateDep, user: ConversationReader, session: SessionDep,
    status_filter: Annotated[Literal[JOB_STATUSES] | None, Query(alias="status")] = None,  # type: ignore[valid-type]
    include_deleted: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[JobOut]:
    """List the caller's jobs (every job for admins), newest first, each with its schedule as Temporal has it."""
    rows, total = await job_queries.list_jobs(session, user.id, sees_everything(request, user),
                                              include_deleted or status_filter == "deleted", status_filter, limit,
                                              offset)
    descriptions = await jobs.describe_many(state.temporal, rows)
    if any([jobs.reconcile(job, description) for job, description in zip(rows, descriptions, strict=True)]):
        await session.commit()
    items = [jobs.job_out(job, description) for job, description in zip(rows, descriptions, strict=True)]
    return Page[JobOut](items=items, total=total, limit=limit, offset=offset)


async def _visible(session: SessionDep, request: Request, user: User, job_id: uuid.UUID, lock: bool = False) -> CoreJob:
    job = await job_queries.get_visible_job(session, job_id, user.id, sees_everything(request, user), lock=lock)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Job {job_id} not found")
    return job


async def _current(state: StateDep, session: SessionDep, job: CoreJob) -> JobOut:
    description = None if job.status == "deleted" else await jobs.describe(state.temporal, job)
    if jobs.reconcile(job, description):
        await session.commit()
    return jobs.job_out(job, description)


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(404))
async def get_job(job_id: uuid.UUID, request: Request, state: StateDep, user: ConversationReader,
                  session: SessionDep) -> JobOut:
    """Return a job with its next run times; a schedule deleted outside the API shows as schedule_missing."""
    return await _current(state, session, await _visible(session, request, user, job_id))


@router.patch("/{job_id}", response_model=JobOut, responses=error_responses(404, 409, 422))
async def update_job(job_id: uuid.UUID, body: JobUpdate, request: Request, state: StateDep,
                     user: ConversationWriter, session: SessionDep) -> JobOut:
    """Change a job's schedule, action, limits or enabled flag; the schedule follows at once."""
    job = await _visible(session, request, user, job_id, lock=True)
    if job.status == "deleted":
        raise HTTPException(status.HTTP_409_CONFLICT, f"Job {job_id} was deleted")
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(name) is None and name in changes for name in ("name", "action", "enabled")):
        raise jobs.invalid("body", "name, action and enabled cannot be null")
    spec = changes.get("schedule_spec", job.schedule_spec)
    timezone = (changes.get("timezone") or "UTC") if "timezone" in changes else job.timezone
    scheduled_at = changes.get("scheduled_at", job.scheduled_at)
    reschedule = "scheduled_at" in changes
    if reschedule or "schedule_spec" in changes or "timezone" in changes:
        jobs.check_schedule(job.job_type, spec, timezone, scheduled_at)
    if body.action is not None:
        params = await jobs.check_action(state.settings, body.action)
        if body.action.type == "chat" and job.action_type == "chat" and "conversation_id" not in params:
            # A changed prompt goes on in the job's conversation rather than starting another.
            params["conversation_id"] = job.payload.get("conversation_id")
        if body.action.type == "chat":
            owner = await session.get(User, job.user_id)
            assert owner is not None
            params["conversation_id"] = str(await _job_conversation(session, owner, params, job.name))
        job.action_type, job.payload = body.action.type, params
    job.schedule_spec, job.timezone, job.scheduled_at = spec, timezone, scheduled_at
    for name in ("name", "overlap", "max_retries", "timeout_seconds", "catchup_window_seconds", "enabled"):
        if changes.get(name) is not None:
            setattr(job, name, changes[name])
    if "timeout_seconds" in changes and changes["timeout_seconds"] is None:
        job.timeout_seconds = None
    if "enabled" in changes:
        job.status = _status_after_toggle(job, job.enabled)
    if reschedule and job.job_type == "one_time" and job.enabled:
        job.status = "scheduled"
    job.updated_at = datetime.now(UTC)
    await session.flush()
    await jobs.update_schedule(state.temporal, job, state.settings.temporal_task_queue, reschedule)
    await session.commit()
    return await _current(state, session, job)


def _status_after_toggle(job: CoreJob, enabled: bool) -> str:
    if job.status in ("completed", "failed") and job.job_type == "one_time":
        return job.status
    return "scheduled" if enabled else "paused"


@router.post("/{job_id}/pause", response_model=JobOut, responses=error_responses(404, 409))
async def pause_job(job_id: uuid.UUID, request: Request, state: StateDep, user: ConversationWriter,
                    session: SessionDep) -> JobOut:
    """Pause the schedule: no run starts until it is resumed. A running run goes on."""
    return await _set_paused(job_id, request, state, user, session, paused=True)


@router.post("/{job_id}/resume", response_model=JobOut, responses=error_responses(404, 409))
async def resume_job(job_id: uuid.UUID, request: Request, state: StateDep, user: ConversationWriter,
                     session: SessionDep) -> JobOut:
    """Resume a paused schedule."""
    return await _set_paused(job_id, request, state, user, session, paused=False)


async def _set_paused(job_id: uuid.UUID, request: Request, state: StateDep, user: User, session: SessionDep,
                      paused: bool) -> JobOut:
    job = await _live_job(session, request, user, job_id)
    handle = jobs.handle(state.temporal, job)
    note = f"{'paused' if paused else 'resumed'} through the API by {user.username}"
    await _on_schedule(job, handle.pause(note=note) if paused else handle.unpause(note=note))
    job.enabled = not paused
    job.status = _status_after_toggle(job, not paused)
    job.updated_at = datetime.now(UTC)
    await session.commit()
    return await _current(state, session, job)


async def _live_job(session: SessionDep, request: Request, user: User, job_id: uuid.UUID) -> CoreJob:
    job = await _visible(session, request, user, job_id, lock=True)
    if job.status == "deleted":
        raise HTTPException(status.HTTP_409_CONFLICT, f"Job {job_id} was deleted")
    return job


async def _on_schedule(job: CoreJob, call: Awaitable[None]) -> None:
    """Await a call on the job's schedule, or raise 409 when the schedule is gone."""
    with jobs.temporal_errors():
        try:
            await call
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"the schedule of job {job.id} no longer exists in Temporal. Update the job to "
                                "create it again, or delete the job") from error


@router.post("/{job_id}/trigger", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(404, 409, 503))
async def trigger_job(job_id: uuid.UUID, request: Request, state: StateDep, user: ConversationWriter,
                      session: SessionDep) -> Response:
    """Start one run now, whatever the schedule and overlap policy; it appears in the executions."""
    job = await _live_job(session, request, user, job_id)
    # A trigger starts a run as a new job would, so it shares the job creation limit.
    await check_job_rate(state, user.id, getattr(request.state, "key_id", None))
    # Started directly with an id of its own: the schedule's trigger names runs by the second, so two
    # triggers within one second would collide and the second would be lost.
    try:
        await state.temporal.start_workflow(JobWorkflow.run, JobRunInput(job_id=str(job.id)),
                                            id=f"job-{job.id}-trigger-{uuid.uuid4()}",
                                            task_queue=state.settings.temporal_task_queue)
    except RPCError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the workflow service failed ({error.message}). Try again shortly") from error
    logger.info("job %s triggered by user %s", job.id, user.id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/{job_id}/backfill", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(404, 409, 422))
async def backfill_job(job_id: uuid.UUID, body: BackfillRequest, request: Request, state: StateDep,
                       user: ConversationWriter, session: SessionDep) -> Response:
    """Run the schedule's runs of a past time range now, one after another."""
    job = await _live_job(session, request, user, job_id)
    if job.job_type == "one_time":
        raise jobs.invalid("job_type", "backfill applies to cron and interval jobs; trigger a one_time job instead")
    if body.start_at >= body.end_at:
        raise jobs.invalid("end_at", "end_at must be after start_at")
    if body.end_at > datetime.now(UTC):
        raise jobs.invalid("end_at", "end_at must not be in the future")
    if body.start_at < datetime.now(UTC) - MAX_BACKFILL_AGE:
        raise jobs.invalid("start_at", "start_at must be within the last 366 days")
    if job.job_type == "interval":
        # Counted before asking Temporal, which would list every one of a huge range's times.
        runs = (body.end_at - body.start_at) / jobs.parse_interval(job.schedule_spec or "")
    else:
        # Temporal lists at most 1000 matching times, so reaching that many means too many.
        runs = await jobs.count_matching_times(state.temporal, job, body.start_at, body.end_at)
    if runs >= MAX_BACKFILL_RUNS:
        raise jobs.invalid("start_at", f"the range contains {int(runs)} or more runs; a backfill may contain fewer "
                                       f"than {MAX_BACKFILL_RUNS}")
    # One after another, however the job's own overlap policy is set.
    await check_job_rate(state, user.id, getattr(request.state, "key_id", None))
    backfill = ScheduleBackfill(start_at=body.start_at, end_at=body.end_at, overlap=ScheduleOverlapPolicy.BUFFER_ALL)
    await _on_schedule(job, jobs.handle(state.temporal, job).backfill(backfill))
    logger.info("job %s backfilled from %s to %s by user %s", job.id, body.start_at, body.end_at, user.id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
async def delete_job(job_id: uuid.UUID, request: Request, state: StateDep, user: ConversationWriter,
                     session: SessionDep) -> Response:
    """Delete the schedule; the job's row and its executions stay, with status deleted."""
    job = await _visible(session, request, user, job_id, lock=True)
    if job.status != "deleted":
        await jobs.delete_schedule(state.temporal, job)
        now = datetime.now(UTC)
        job.status, job.enabled, job.deleted_at, job.updated_at = "deleted", False, now, now
        await session.commit()
        logger.info("job %s deleted by user %s", job.id, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/executions", response_model=Page[ExecutionOut], responses=error_responses(404))
async def list_executions(
    job_id: uuid.UUID, request: Request, user: ConversationReader, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[ExecutionOut]:
    """List the job's runs, newest first."""
    await _visible(session, request, user, job_id)
    rows, total = await job_queries.list_executions(session, job_id, limit, offset)
    items = []
    for row in rows:
        duration = None
        if row.completed_at is not None:
            duration = int((row.completed_at - row.started_at).total_seconds() * 1000)
        items.append(ExecutionOut.model_validate({**{c: getattr(row, c) for c in (
            "id", "job_id", "status", "result", "error_message", "started_at", "completed_at", "attempts",
            "cpu_usage", "memory_usage", "workflow_id")}, "duration_ms": duration}))
    return Page[ExecutionOut](items=items, total=total, limit=limit, offset=offset)
