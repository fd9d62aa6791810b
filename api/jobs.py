"""Jobs and their Temporal Schedules: validation, schedule building and reading the schedule back.

Every job, one-time jobs included, is a Temporal Schedule with the id
`job-<job id>`, so operators see, pause and trigger all of them in one place.
A one-time job is a schedule that matches one second and may act once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.service import RPCError, RPCStatusCode

from activities.job_actions import (
    ACTION_TYPES,
    ActionFailed,
    ActionRejected,
    ChatParams,
    WebhookParams,
    WorkerTaskParams,
    check_address,
)
from activities.task_types import TASK_TYPES
from api.schemas import JobAction, JobOut, ScheduleRun, ScheduleView
from db.models import CoreJob
from settings import Settings
from workflows.job_types import JobRunInput
from workflows.jobs import JobWorkflow

logger = logging.getLogger(__name__)

INTERVAL_PATTERN = re.compile(r"^([0-9]{1,9})\s*(s|m|h|d)$")
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=366)
CRON_FIELDS = 5
MAX_SCHEDULE_AHEAD = timedelta(days=36_525)
SHOWN_RUN_TIMES = 5
DEFAULT_MAX_RETRIES = 2
OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
_duration = TypeAdapter(timedelta)


def invalid(field: str, message: str, value: Any = None) -> RequestValidationError:
    """Return a 422 error for one body field, in the same form as pydantic's own."""
    return RequestValidationError([{"loc": ("body", *field.split(".")), "type": "value_error", "msg": message,
                                    "input": value}])


def schedule_id(job_id: uuid.UUID) -> str:
    return f"job-{job_id}"


def parse_interval(text: str) -> timedelta:
    """Read `30s`, `15m`, `2h`, `1d` or an ISO 8601 duration such as `PT15M`."""
    match = INTERVAL_PATTERN.match(text.strip())
    if match:
        every = timedelta(seconds=int(match.group(1)) * INTERVAL_UNITS[match.group(2)])
    elif text.strip().upper().startswith("P"):
        if re.search(r"[YM]", text.strip().upper().split("T")[0]):
            raise ValueError(f"{text!r} counts months or years, which have no fixed length; use days, such as P30D")
        try:
            every = _duration.validate_python(text.strip())
        except (ValidationError, OverflowError) as error:
            raise ValueError(f"{text!r} is not a valid ISO 8601 duration") from error
    else:
        raise ValueError(f"{text!r} is not an interval: expected a number and a unit (30s, 15m, 2h, 1d) or an "
                         "ISO 8601 duration such as PT15M")
    if not MIN_INTERVAL <= every <= MAX_INTERVAL:
        raise ValueError(f"the interval must be between 1 second and 366 days, got {every}")
    return every


def check_schedule(job_type: str, spec: str | None, timezone: str, scheduled_at: datetime | None) -> None:
    """Raise a 422 naming the field when the schedule fields do not fit the job type."""
    try:
        ZoneInfo(timezone)
        # Names such as localtime, Factory or posix/… exist as files but are not zones to schedule in.
        if timezone not in available_timezones() or timezone in ("localtime", "Factory", "posixrules"):
            raise ValueError(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise invalid("timezone", f"unknown time zone {timezone!r}: expected an IANA name such as "
                                  "Europe/Paris or UTC", timezone) from error
    if job_type == "one_time":
        if spec is not None:
            raise invalid("schedule_spec", "a one_time job has no schedule_spec: set scheduled_at", spec)
        if scheduled_at is None:
            raise invalid("scheduled_at", "a one_time job needs scheduled_at, a time in the future")
        if scheduled_at <= datetime.now(UTC):
            raise invalid("scheduled_at", f"{scheduled_at.isoformat()} is in the past: a one_time job needs a "
                                          "time in the future", scheduled_at.isoformat())
        if scheduled_at > datetime.now(UTC) + MAX_SCHEDULE_AHEAD:
            raise invalid("scheduled_at", "must be within 100 years", scheduled_at.isoformat())
        return
    if scheduled_at is not None:
        raise invalid("scheduled_at", f"scheduled_at applies to one_time jobs only, not to {job_type} jobs")
    if spec is None:
        example = "*/15 * * * *" if job_type == "cron" else "15m"
        raise invalid("schedule_spec", f"a {job_type} job needs schedule_spec, such as {example!r}")
    if job_type == "cron":
        if len(spec.split()) != CRON_FIELDS:
            raise invalid("schedule_spec", f"{spec!r} is not a five-field cron expression (minute hour "
                                           "day-of-month month day-of-week), such as '*/15 * * * *'", spec)
        if "#" in spec:
            # Temporal would read the text after '#' as a comment and silently run on every such weekday.
            raise invalid("schedule_spec", f"{spec!r} uses '#' (nth weekday), which is not supported", spec)
    else:
        try:
            parse_interval(spec)
        except ValueError as error:
            raise invalid("schedule_spec", str(error), spec) from error


async def check_action(settings: Settings, action: JobAction) -> dict[str, Any]:
    """Validate the action's parameters and return them as stored; 422 naming the field otherwise."""
    action_type = ACTION_TYPES.get(action.type)
    if action_type is None:
        known = ", ".join(sorted(ACTION_TYPES))
        raise invalid("action.type", f"unknown action type {action.type!r}; known types: {known}", action.type)
    try:
        params = action_type.params.model_validate(action.params)
    except ValidationError as error:
        raise RequestValidationError([
            {**item, "loc": ("body", "action", "params", *item["loc"])} for item in error.errors()
        ]) from error
    if isinstance(params, WorkerTaskParams):
        task_type = TASK_TYPES.get(params.task_type)
        if task_type is None:
            raise invalid("action.params.task_type", f"unknown task type {params.task_type!r}; known types: "
                                                     f"{', '.join(sorted(TASK_TYPES))}", params.task_type)
        try:
            params.payload = task_type.params.model_validate(params.payload).model_dump(mode="json",
                                                                                          exclude_none=True)
        except ValidationError as error:
            raise RequestValidationError([{**item, "loc": ("body", "action", "params", "payload", *item["loc"])}
                                          for item in error.errors()]) from error
    if isinstance(params, WebhookParams):
        try:
            await asyncio.to_thread(check_address, params.url.host or "", settings.http_allow_private_addresses)
        except ActionRejected as error:
            raise invalid("action.params.url", str(error), str(params.url)) from error
        except ActionFailed:
            pass  # A name that does not resolve yet may resolve when the job runs.
    if isinstance(params, ChatParams):
        model = params.model or settings.default_model_name
        if settings.model_by_name(model) is None:
            configured = ", ".join(m.name for m in settings.models)
            raise invalid("action.params.model", f"model {model!r} is not configured; configured: {configured}",
                          model)
        if len(params.prompt) > settings.max_message_chars:
            raise invalid("action.params.prompt", f"the prompt is {len(params.prompt)} characters; the limit is "
                                                  f"{settings.max_message_chars}")
    return params.model_dump(mode="json", exclude_none=True)


def _one_second(at: datetime) -> ScheduleCalendarSpec:
    at = at.astimezone(UTC)
    return ScheduleCalendarSpec(
        second=[ScheduleRange(at.second)], minute=[ScheduleRange(at.minute)], hour=[ScheduleRange(at.hour)],
        day_of_month=[ScheduleRange(at.day)], month=[ScheduleRange(at.month)], year=[ScheduleRange(at.year)],
        comment="one-time job")


def build_schedule(job: CoreJob, task_queue: str, remaining_actions: int = 1) -> Schedule:
    if job.job_type == "cron":
        spec = ScheduleSpec(cron_expressions=[job.schedule_spec or ""], time_zone_name=job.timezone)
    elif job.job_type == "interval":
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=parse_interval(job.schedule_spec or ""))],
                            time_zone_name=job.timezone)
    else:
        assert job.scheduled_at is not None
        spec = ScheduleSpec(calendars=[_one_second(job.scheduled_at)], time_zone_name="UTC")
    one_time = job.job_type == "one_time"
    return Schedule(
        action=ScheduleActionStartWorkflow(JobWorkflow.run, JobRunInput(job_id=str(job.id)),
                                           id=f"job-{job.id}-run", task_queue=task_queue),
        spec=spec,
        policy=SchedulePolicy(overlap=OVERLAP[job.overlap],
                              catchup_window=timedelta(seconds=job.catchup_window_seconds)),
        state=ScheduleState(paused=not job.enabled, note=f"PAF job {job.name!r}",
                            limited_actions=one_time, remaining_actions=remaining_actions if one_time else 0),
    )


@contextmanager
def temporal_errors(field: str = "schedule_spec") -> Iterator[None]:
    """Map Temporal's errors to HTTP errors: a rejected spec to 422, an outage to 503."""
    try:
        yield
    except RPCError as error:
        if error.status == RPCStatusCode.INVALID_ARGUMENT:
            raise invalid(field, f"Temporal rejected the schedule: {error.message}") from error
        logger.error("Temporal schedule call failed: %s %s", error.status, error.message)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the workflow service failed ({error.message}). Try again shortly") from error


async def create_schedule(client: Client, job: CoreJob, task_queue: str) -> None:
    with temporal_errors("scheduled_at" if job.job_type == "one_time" else "schedule_spec"):
        await client.create_schedule(schedule_id(job.id), build_schedule(job, task_queue))
    await _check_matches(client, job)


async def _check_matches(client: Client, job: CoreJob) -> None:
    """Delete the schedule and raise 422 when a recurring spec never matches, such as 31 February."""
    if job.job_type == "one_time":
        return
    description = await describe(client, job)
    if description is not None and not description.info.next_action_times and not description.schedule.state.paused:
        await delete_schedule(client, job)
        raise invalid("schedule_spec", f"{job.schedule_spec!r} never matches a time, so the job would never run",
                      job.schedule_spec)


async def update_schedule(client: Client, job: CoreJob, task_queue: str, reschedule: bool) -> None:
    """Replace the schedule with the job's current fields, recreating it when it is gone."""

    def updater(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # A one-time job that already ran keeps its spent action unless it gets a new time.
        remaining = 1 if reschedule else current.description.schedule.state.remaining_actions
        return ScheduleUpdate(schedule=build_schedule(job, task_queue, remaining_actions=remaining))

    with temporal_errors():
        try:
            await client.get_schedule_handle(schedule_id(job.id)).update(updater)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            await client.create_schedule(schedule_id(job.id), build_schedule(job, task_queue))
    await _check_matches(client, job)


async def count_matching_times(client: Client, job: CoreJob, start_at: datetime, end_at: datetime) -> int:
    """Return how many runs the job's schedule has between the two times, as Temporal computes them."""
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(start_at)
    end.FromDatetime(end_at)
    with temporal_errors():
        response = await client.workflow_service.list_schedule_matching_times(ListScheduleMatchingTimesRequest(
            namespace=client.namespace, schedule_id=schedule_id(job.id), start_time=start, end_time=end))
    return len(response.start_time)


def handle(client: Client, job: CoreJob) -> ScheduleHandle:
    return client.get_schedule_handle(schedule_id(job.id))


async def delete_schedule(client: Client, job: CoreJob) -> None:
    with temporal_errors():
        try:
            await handle(client, job).delete()
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise


async def describe(client: Client, job: CoreJob) -> ScheduleDescription | None:
    """Return the schedule as Temporal has it now, or None when it does not exist."""
    with temporal_errors():
        try:
            return await handle(client, job).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise


def reconcile(job: CoreJob, description: ScheduleDescription | None) -> bool:
    """Bring the job's status in line with its schedule, as changed in the Temporal UI or CLI.

    Return whether anything changed. A job whose schedule is gone is never shown as active.
    """
    before = (job.status, job.enabled)
    if job.status == "deleted":
        return False
    if description is None:
        if not (job.job_type == "one_time" and job.status in ("completed", "failed")):
            job.status = "schedule_missing"
    else:
        paused = description.schedule.state.paused
        job.enabled = not paused
        if paused and job.status in ("scheduled", "running", "schedule_missing"):
            job.status = "paused"
        elif not paused and job.status in ("paused", "schedule_missing"):
            job.status = "scheduled"
    changed = before != (job.status, job.enabled)
    if changed:
        job.updated_at = datetime.now(UTC)
        logger.info("job %s reconciled with its schedule: %s to %s", job.id, before, (job.status, job.enabled))
    return changed


def schedule_view(description: ScheduleDescription) -> ScheduleView:
    info = description.info
    return ScheduleView(
        id=description.id,
        paused=description.schedule.state.paused,
        note=description.schedule.state.note,
        next_run_times=list(info.next_action_times[:SHOWN_RUN_TIMES]),
        recent_runs=[
            ScheduleRun(scheduled_at=run.scheduled_at, started_at=run.started_at,
                        workflow_id=getattr(run.action, "workflow_id", ""))
            for run in info.recent_actions
        ],
        running_workflow_ids=[running.workflow_id for running in info.running_actions],
        runs_started=info.num_actions,
        runs_skipped_for_overlap=info.num_actions_skipped_overlap,
        runs_missed_catchup_window=info.num_actions_missed_catchup_window,
    )


def job_out(job: CoreJob, description: ScheduleDescription | None) -> JobOut:
    return JobOut(
        id=job.id, user_id=job.user_id, name=job.name, job_type=job.job_type, schedule_spec=job.schedule_spec,
        timezone=job.timezone, scheduled_at=job.scheduled_at,
        action=JobAction(type=job.action_type, params=dict(job.payload)), overlap=job.overlap,
        max_retries=job.max_retries, timeout_seconds=job.timeout_seconds,
        catchup_window_seconds=job.catchup_window_seconds, enabled=job.enabled, status=job.status,
        result=job.result, error_message=job.error_message, retry_count=job.retry_count, created_at=job.created_at,
        updated_at=job.updated_at, started_at=job.started_at, completed_at=job.completed_at,
        deleted_at=job.deleted_at, schedule=schedule_view(description) if description is not None else None,
    )


async def describe_many(client: Client, jobs: list[CoreJob]) -> list[ScheduleDescription | None]:
    async def one(job: CoreJob) -> ScheduleDescription | None:
        return None if job.status == "deleted" else await describe(client, job)

    return list(await asyncio.gather(*(one(job) for job in jobs)))
