"""Action types that scheduled jobs can run, and the handler interface that adds more.

A handler takes an `ActionContext` and its validated parameters and returns a
JSON-serialisable dict, the execution's result. Raising fails the attempt, and
the job's `max_retries` decides whether another one follows. A plain function
runs in a thread of its own, where its CPU time can be measured. A coroutine
function runs on the worker's event loop.

    class Params(BaseModel):
        table: str

    @register_action("vacuum", Params, "VACUUM one table")
    async def vacuum(context: ActionContext, params: Params) -> dict[str, Any]:
        ...

Register handlers in a module that both the API and the worker import, so the
API can validate parameters and the worker can run them.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
import ipaddress
import socket
import threading
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from activities.handlers import Handler, HandlerRegistry, Registered

from settings import Settings

WORKER_TASK_ACTION = "worker_task"


@dataclass(frozen=True)
class ActionContext:
    job_id: str
    execution_id: str
    owner_id: str
    attempt: int
    settings: Settings


class ActionFailed(RuntimeError):
    """A failed action run. The message is stored in the execution record."""


class ActionRejected(ActionFailed):
    """An action that no retry can make succeed, such as a refused address."""


ActionType = Registered[ActionContext]
ACTION_TYPES: HandlerRegistry[ActionContext] = HandlerRegistry("action type")
register_action = ACTION_TYPES.register


@dataclass(frozen=True)
class Measured:
    result: dict[str, Any]
    cpu_seconds: float | None
    peak_memory_bytes: int | None


async def run_handler(action: ActionType, context: ActionContext, raw_params: dict[str, Any]) -> Measured:
    """Validate the parameters and run the handler, measuring what can be measured."""
    assert action.handler is not None
    params = action.params.model_validate(raw_params)
    if inspect.iscoroutinefunction(action.handler):
        # NOTE: a coroutine shares the worker's thread and heap, so its CPU time and memory are not its own.
        result = await action.handler(context, params)
        return Measured(dict(result), None, None)
    return await asyncio.to_thread(_measure_in_thread, action.handler, context, params)


_tracing_lock = threading.Lock()


def _measure_in_thread(handler: Handler[ActionContext], context: ActionContext, params: BaseModel) -> Measured:
    started_cpu = time.thread_time()
    # tracemalloc counts the whole process, so its peak is the action's only when it runs alone.
    traced = _tracing_lock.acquire(blocking=False)
    if traced:
        tracemalloc.start()
    try:
        result = handler(context, params)
        peak = tracemalloc.get_traced_memory()[1] if traced else None
    finally:
        if traced:
            tracemalloc.stop()
            _tracing_lock.release()
    return Measured(dict(result), time.thread_time() - started_cpu, peak)  # type: ignore[arg-type]


class ChatParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=32_000, description="The message each run sends")
    model: str | None = Field(default=None, min_length=1, max_length=100)
    conversation_id: uuid.UUID | None = Field(default=None, description="Omit to start a conversation for the job")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, allow_inf_nan=False)


class WorkerTaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_type: str = Field(min_length=1, max_length=100, description="A worker task type, such as code_analysis")
    payload: dict[str, Any] = Field(default_factory=dict, description="The task type's parameters")
    priority: int = Field(default=5, ge=1, le=10)


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    method: Literal["GET", "POST"] = "POST"
    json_body: dict[str, Any] | None = Field(default=None, description="Sent as JSON with POST")
    headers: dict[str, str] = Field(default_factory=dict, max_length=50,
                                    description="Extra request headers; Host and the X-PAF- ones cannot be set")

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in headers if name.lower() == "host" or name.lower().startswith("x-paf-"))
        if reserved:
            raise ValueError(f"these headers cannot be set: {', '.join(reserved)}")
        return headers


# Chat turns and worker tasks are run by the job workflow itself, not by a handler.
ACTION_TYPES["chat"] = ActionType("chat", ChatParams, None, "Send a prompt to a conversation as a UPEE turn")
ACTION_TYPES[WORKER_TASK_ACTION] = ActionType(WORKER_TASK_ACTION, WorkerTaskParams, None,
                                              "Dispatch a task to worker agents")


def check_address(host: str, allow_private: bool) -> None:
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise ActionFailed(f"cannot resolve {host}: {error}") from error
    except UnicodeError as error:
        raise ActionRejected(f"invalid host name {host!r}: {error}") from error
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        # is_global also excludes shared (carrier-grade NAT) space and the IPv6 forms of local addresses.
        if not address.is_global or address.is_multicast or _embeds_local_ipv4(address) \
                or any(address in network for network in EXTRA_BLOCKED_NETWORKS):
            raise ActionRejected(f"{host} resolves to {address}, a private or local address; set "
                                 "PAF_HTTP_ALLOW_PRIVATE_ADDRESSES=true in the environment of the API and the "
                                 "workers to allow it")


# Special-purpose ranges that Python counts as global: protocol assignments and the old 6to4 relay anycast.
# The well-known NAT64 prefix, which carries an IPv4 address in its last 32 bits.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
EXTRA_BLOCKED_NETWORKS = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24"))


class ResponseTooLarge(ValueError):
    """A response body over the configured limit."""


async def read_limited(response: httpx.Response, limit: int) -> bytearray:
    """Read a streamed response body, raising ResponseTooLarge once it passes `limit` bytes."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise ResponseTooLarge(f"the response is larger than {limit} bytes")
    return body


def _embeds_local_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Return whether an IPv6 address carries a non-global IPv4 address (6to4 or IPv4-mapped)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return False
    embedded = address.sixtofour or address.ipv4_mapped
    if embedded is None and address in NAT64_PREFIX:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return embedded is not None and not embedded.is_global


@register_action("webhook", WebhookParams, "Send an HTTP request; a status of 400 or more fails the attempt")
async def webhook(context: ActionContext, params: WebhookParams) -> dict[str, Any]:
    url = str(params.url)
    host = urlsplit(url).hostname or ""
    # NOTE: the address is checked before connecting, so a DNS answer that changes in between is not caught.
    await asyncio.to_thread(check_address, host, context.settings.http_allow_private_addresses)
    limit = context.settings.http_max_response_bytes
    # The job's own headers go first, so they cannot replace the ones that identify the job.
    headers = {**params.headers, "User-Agent": "paf-core-agent-job", "X-PAF-Job-Id": context.job_id,
               "X-PAF-Execution-Id": context.execution_id}
    started = time.monotonic()
    async with httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(30.0)) as client:
        try:
            async with client.stream(params.method, url, headers=headers,
                                     json=params.json_body if params.method == "POST" else None) as response:
                body = await read_limited(response, limit)
        except ResponseTooLarge as error:
            raise ActionFailed(str(error)) from error
        except httpx.HTTPError as error:
            raise ActionFailed(f"{params.method} {url} failed: {error!r}") from error
    text = body.decode("utf-8", errors="replace")
    if response.status_code >= 400:
        raise ActionFailed(f"{params.method} {url} returned status {response.status_code}: {text[:300]}")
    return {"status_code": response.status_code, "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            "body": text[:2000]}
