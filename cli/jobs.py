"""`paf jobs`: scheduled jobs through the HTTP API, with the caller's API key."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from cli.client import error_text


class JobCommandError(Exception):
    """A request the API rejected, or an API that could not be reached. The message names which."""


def _request(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None) -> Any:
    job_id = getattr(args, "job_id", None)
    if job_id is not None:
        try:
            # Checked, so that a crafted id such as ../keys/<id> cannot reach another route.
            args.job_id = str(uuid.UUID(job_id))
        except ValueError:
            raise JobCommandError(f"{job_id!r} is not a job id; take it from `paf jobs list`") from None
        path = path.replace(job_id, args.job_id)
    headers = {"X-API-Key": args.resolved_api_key}
    try:
        with httpx.Client(base_url=args.api_url, timeout=60) as client:
            response = client.request(method, path, json=body, params=params, headers=headers)
    except httpx.TransportError as error:
        raise JobCommandError(f"cannot reach the API at {args.api_url} ({error}); start it with `make run`, "
                              "or pass --api-url") from None
    if response.status_code >= 400:
        raise JobCommandError(f"HTTP {response.status_code}: {error_text(response)}")
    return response.json() if response.content else None


def _schedule_text(job: dict[str, Any]) -> str:
    if job["job_type"] == "one_time":
        return f"once at {job['scheduled_at']}"
    zone = "" if job["timezone"] == "UTC" else f" ({job['timezone']})"
    return f"{job['job_type']} {job['schedule_spec']}{zone}"


def command_create(args: argparse.Namespace) -> int:
    if args.cron:
        schedule = {"job_type": "cron", "schedule_spec": args.cron}
    elif args.every:
        schedule = {"job_type": "interval", "schedule_spec": args.every}
    else:
        schedule = {"job_type": "one_time", "scheduled_at": args.at}
    if args.chat:
        action = {"type": "chat", "params": {"prompt": args.chat, **({"model": args.model} if args.model else {})}}
    elif args.webhook:
        action = {"type": "webhook", "params": {"url": args.webhook}}
    else:
        try:
            params = json.loads(args.params or "{}")
        except json.JSONDecodeError as error:
            raise JobCommandError(f"--params is not a JSON object: {error}") from None
        action = {"type": args.action, "params": params}
    body: dict[str, Any] = {"name": args.name, **schedule, "action": action, "timezone": args.timezone,
                            "overlap": args.overlap, "max_retries": args.max_retries,
                            "timeout_seconds": args.timeout, "enabled": not args.paused}
    job = _request(args, "POST", "/api/jobs", {k: v for k, v in body.items() if v is not None})
    print(f"created job {job['id']} ({_schedule_text(job)}), status {job['status']}")
    for at in (job.get("schedule") or {}).get("next_run_times", [])[:3]:
        print(f"  next run: {at}")
    return 0


def command_list(args: argparse.Namespace) -> int:
    page = _request(args, "GET", "/api/jobs", params={"limit": 100, "include_deleted": args.all})
    print(f"{'JOB ID':<36} {'STATUS':<16} {'NEXT RUN':<25} {'SCHEDULE':<28} NAME")
    for job in page["items"]:
        next_runs = (job.get("schedule") or {}).get("next_run_times") or ["-"]
        print(f"{job['id']:<36} {job['status']:<16} {next_runs[0]:<25} {_schedule_text(job):<28} {job['name']}")
    if page["total"] > len(page["items"]):
        print(f"... and {page['total'] - len(page['items'])} more")
    return 0


def command_show(args: argparse.Namespace) -> int:
    job = _request(args, "GET", f"/api/jobs/{args.job_id}")
    runs = _request(args, "GET", f"/api/jobs/{args.job_id}/executions", params={"limit": args.runs})
    schedule = job.get("schedule") or {}
    print(f"{job['name']} ({job['id']})")
    print(f"  status:    {job['status']}{'  (schedule missing in Temporal)' if not schedule else ''}")
    print(f"  schedule:  {_schedule_text(job)}, overlap {job['overlap']}, retries {job['max_retries']}")
    print(f"  action:    {job['action']['type']} {json.dumps(job['action']['params'])}")
    for at in schedule.get("next_run_times", [])[:3]:
        print(f"  next run:  {at}")
    print(f"  runs:      {runs['total']}")
    for run in runs["items"]:
        outcome = run["error_message"] or json.dumps(run["result"])[:80]
        print(f"    {run['started_at']}  {run['status']:<9} {run['duration_ms'] or '-':>7} ms  "
              f"attempts {run['attempts']}  {outcome}")
    return 0


def _simple(method: str, action: str, done: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        _request(args, method, f"/api/jobs/{args.job_id}{action}")
        print(f"{done} job {args.job_id}")
        return 0

    return command


def _reporting(handler: Callable[[argparse.Namespace], int],
               resolve_key: Callable[[str | None], str]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            args.resolved_api_key = resolve_key(args.api_key)
            return handler(args)
        except JobCommandError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    return run


def add_commands(commands: argparse._SubParsersAction, default_api_url: str,  # type: ignore[type-arg]
                 resolve_key: Callable[[str | None], str]) -> None:
    jobs = commands.add_parser("jobs", help="manage scheduled jobs through the API").add_subparsers(
        dest="jobs_command", required=True)

    def subcommand(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        parser = jobs.add_parser(name, help=help_text)
        parser.add_argument("--api-url", default=default_api_url, help="default: %(default)s")
        parser.add_argument("--api-key", help="default: PAF_API_KEY, else the development key in the state folder")
        parser.set_defaults(handler=_reporting(handler, resolve_key))
        return parser

    create = subcommand("create", "create a job", command_create)
    create.add_argument("name")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="a five-field cron expression, such as '*/15 * * * *'")
    when.add_argument("--every", help="an interval: 30s, 15m, 2h, 1d or ISO 8601 such as PT15M")
    when.add_argument("--at", help="one run at this ISO 8601 time with its offset, such as 2027-01-01T09:00:00Z")
    what = create.add_mutually_exclusive_group(required=True)
    what.add_argument("--chat", metavar="PROMPT", help="send PROMPT as a chat turn in the job's conversation")
    what.add_argument("--webhook", metavar="URL", help="send a POST request to URL")
    what.add_argument("--action", help="another registered action type, with --params")
    create.add_argument("--params", help="the action's parameters as a JSON object")
    create.add_argument("--model", help="the model for --chat")
    create.add_argument("--timezone", help="IANA time zone of --cron (default UTC)")
    create.add_argument("--overlap", choices=["skip", "buffer_one", "buffer_all", "cancel_other",
                                              "terminate_other", "allow_all"], help="default skip")
    create.add_argument("--max-retries", type=int, help="default 2")
    create.add_argument("--timeout", type=int, help="seconds per attempt")
    create.add_argument("--paused", action="store_true", help="create the schedule paused")

    listed = subcommand("list", "list jobs with their next run", command_list)
    listed.add_argument("--all", action="store_true", help="include deleted jobs")
    show = subcommand("show", "show a job and its latest runs", command_show)
    show.add_argument("job_id")
    show.add_argument("--runs", type=int, default=10, help="how many runs to show (default %(default)s)")
    for name, method, action, done, help_text in (
        ("pause", "POST", "/pause", "paused", "pause a job's schedule"),
        ("resume", "POST", "/resume", "resumed", "resume a paused job"),
        ("trigger", "POST", "/trigger", "triggered", "run a job once now"),
        ("delete", "DELETE", "", "deleted", "delete a job's schedule; its runs stay listed"),
    ):
        subcommand(name, help_text, _simple(method, action, done)).add_argument("job_id")
