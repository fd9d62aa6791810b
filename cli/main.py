"""The `paf` command: run the local stack, chat with it, migrate the database."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import httpx
from sqlalchemy.exc import SQLAlchemyError

from cli.admin import add_commands
from cli.jobs import add_commands as add_job_commands
from cli.client import ChatError, print_streamed_answer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_QUESTION = "What is the capital of France, and what is it famous for?"


def default_api_url() -> str:
    """Return PAF_API_URL, else the API of `make run` on PAF_API_PORT (8000 by default)."""
    if os.environ.get("PAF_API_URL"):
        return os.environ["PAF_API_URL"]
    port = os.environ.get("PAF_API_PORT")
    return f"http://127.0.0.1:{port}" if port else DEFAULT_API_URL


def _state_dir() -> Path:
    return Path(os.environ.get("PAF_STATE_DIR", PROJECT_ROOT / ".state")).resolve()


def _api_key(explicit: str | None) -> str:
    key = explicit or os.environ.get("PAF_API_KEY")
    if key:
        return key
    key_file = _state_dir() / "dev-api-key"
    if key_file.exists():
        return key_file.read_text().strip()
    raise SystemExit("No API key: pass --api-key, set PAF_API_KEY, or start the stack with `make run` first")


async def _chat(api_url: str, api_key: str, question: str, **options: object) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=api_url, timeout=httpx.Timeout(600.0, connect=10.0)) as client:
        return await print_streamed_answer(client, api_key, question, out=sys.stdout, **options)


def command_chat(args: argparse.Namespace) -> int:
    try:
        complete = asyncio.run(_chat(args.api_url, _api_key(args.api_key), args.question,
                                     conversation_id=args.conversation, model=args.model,
                                     show_thinking=args.show_thinking))
    except httpx.TransportError as error:
        print(f"error: cannot reach the API at {args.api_url} ({error}); start it with `make run`, "
              "or pass --api-url", file=sys.stderr)
        return 1
    except (ChatError, httpx.HTTPError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"quality score: {complete.get('quality_score')}  conversation: {complete.get('conversation_id')}")
    return 0


def command_stack(args: argparse.Namespace) -> int:
    from devstack.dev_user import ensure_dev_key
    from devstack.process import StartupError
    from devstack.stack import Stack, StackConfig

    config = StackConfig.from_environment()
    stack = Stack(config)
    # SIGTERM stops the stack the same way Ctrl-C does. SIGINT gets the handler explicitly because
    # a shell starts background jobs with SIGINT ignored, and Python then installs none.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        stack.start()
        api_key = asyncio.run(ensure_dev_key(stack.database_url, config.state_dir / "dev-api-key"))
        print(f"\nAsking: {args.question}\n", flush=True)
        complete = asyncio.run(_chat(stack.api_url, api_key, args.question, show_thinking=False))
        print(f"\nquality score: {complete.get('quality_score')}", flush=True)
        job_id = _start_demo_job(stack.api_url, api_key)
        if args.once:
            return 0
        print(
            f"\nPAF Core Agent is running.\n"
            f"  API docs:    {stack.api_url}/docs\n"
            f"  Temporal UI: http://127.0.0.1:{config.temporal_ui_port}\n"
            f"  API key:     {api_key}\n"
            f"  Logs:        {config.state_dir / 'logs'}\n"
            f"  Demo job:    {job_id} (Temporal UI, Schedules: job-{job_id})\n"
            f"Try: {_chat_hint(stack.api_url)}\n"
            f"     .venv/bin/paf jobs show {job_id}{_api_flag(stack.api_url)}\n"
            f"     .venv/bin/temporal workflow list --address {stack.temporal_address}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        _wait_forever()
        return 0
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    except (StartupError, ChatError, httpx.HTTPError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()


def _api_flag(api_url: str) -> str:
    return "" if api_url == DEFAULT_API_URL else f" --api-url {api_url}"


def _chat_hint(api_url: str) -> str:
    return f'.venv/bin/paf chat{_api_flag(api_url)} "Why is the sky blue?"'


def _start_demo_job(api_url: str, api_key: str) -> str:
    """Create and trigger the demonstration job, then print its first run's outcome."""
    from datetime import UTC, datetime

    from devstack.demo_job import ensure_demo_job, wait_for_run

    started = datetime.now(UTC)
    job, triggered = asyncio.run(ensure_demo_job(api_url, api_key))
    if not triggered:
        print(f"\nDemo job {job['id']} ({job['name']}) is paused; resume it with `paf jobs resume`", flush=True)
        return str(job["id"])
    print(f"\nDemo job {job['id']} ({job['name']}, every {job['schedule_spec']}): one run triggered", flush=True)
    run = asyncio.run(wait_for_run(api_url, api_key, job["id"], started))
    if run is None:
        print("demo job: its first run has not finished yet", flush=True)
    else:
        score = (run.get("result") or {}).get("quality_score")
        print(f"demo job: run {run['status']} in {run['duration_ms']} ms, quality score {score}", flush=True)
    return str(job["id"])


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_forever() -> None:
    while True:
        signal.pause()


def command_db(args: argparse.Namespace) -> int:
    from devstack import migrate
    from settings import get_settings

    url = get_settings().database_url
    try:
        if args.action == "upgrade":
            migrate.upgrade(url, args.revision or "head")
        else:
            migrate.downgrade(url, args.revision or "-1")
    except (OSError, SQLAlchemyError) as error:
        print(f"error: database migration failed: {error}; check DATABASE_URL and that the server is running",
              file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser(
        "stack", help="start every service locally and answer one question",
        description="Start PostgreSQL, Temporal, the local model, the worker and the API on 127.0.0.1, "
                    "answer one question, and keep serving until Ctrl-C. Ports and the state folder come from "
                    "PAF_API_PORT, PAF_TEMPORAL_PORT, PAF_TEMPORAL_UI_PORT, PAF_POSTGRES_PORT, PAF_MODEL_PORT "
                    "and PAF_STATE_DIR.")
    stack.add_argument("--once", action="store_true", help="stop everything after the first answer")
    stack.add_argument("--question", default=DEFAULT_QUESTION, help="the first question to ask")
    stack.set_defaults(handler=command_stack)

    chat = commands.add_parser("chat", help="stream an answer from a running API")
    chat.add_argument("question")
    chat.add_argument("--api-url", default=default_api_url(),
                      help="the API's base URL (default: PAF_API_URL, else %(default)s)")
    chat.add_argument("--api-key", help="default: PAF_API_KEY, else the development key in the state folder")
    chat.add_argument("--conversation", help="continue this conversation id")
    chat.add_argument("--model", help="a configured model name")
    chat.add_argument("--show-thinking", action="store_true", help="print UPEE phase progress")
    chat.set_defaults(handler=command_chat)

    db = commands.add_parser("db", help="apply or revert database migrations on DATABASE_URL",
                             description="Apply or revert the Alembic migrations on the database in DATABASE_URL.")
    db.add_argument("action", choices=["upgrade", "downgrade"],
                    help="upgrade applies migrations, downgrade reverts them")
    db.add_argument("revision", nargs="?", help="target revision; default: head for upgrade, -1 for downgrade")
    db.set_defaults(handler=command_db)

    add_commands(commands)
    add_job_commands(commands, default_api_url(), _api_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("PAF_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Request lines and migration plug-in notices would bury the answer the user is waiting for.
    for noisy in ("httpx", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    code = int(args.handler(args))
    # The Temporal client can crash at interpreter exit in short scripts; flush and leave directly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
