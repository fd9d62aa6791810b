"""Task types that worker agents run, and the handler interface that adds more.

A handler takes a `TaskContext` and its validated payload and returns a
JSON-serialisable dict, the task's result. Raising `TaskFailed` fails the
attempt, and the task's `max_retries` decides whether another follows.
Raising `TaskRejected` fails the task at once, for input that no retry can
fix. A plain function runs in a thread of its own, and a coroutine function
runs on the worker's event loop.

    class Params(BaseModel):
        text: str

    @register_task_type("word_count", Params, "Count the words of a text")
    def word_count(context: TaskContext, params: Params) -> dict[str, Any]:
        return {"words": len(params.text.split())}

A worker serves the capabilities it names with --capabilities, each one a
registered task type; the API accepts any registered type.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from activities.handlers import HandlerRegistry, Registered
from activities.job_actions import ActionFailed, ResponseTooLarge, check_address, read_limited
from llm.registry import ProviderRegistry
from llm.types import ChatMessage, CompletionRequest, ProviderError
from settings import Settings


class TaskFailed(RuntimeError):
    """A failed attempt; another may follow."""


class TaskRejected(RuntimeError):
    """Input that no retry can fix; the task fails at once."""


@dataclass(frozen=True)
class TaskContext:
    task_id: str
    attempt: int
    settings: Settings
    providers: ProviderRegistry


TaskType = Registered[TaskContext]
TASK_TYPES: HandlerRegistry[TaskContext] = HandlerRegistry("task type")
register_task_type = TASK_TYPES.register


async def run_task_handler(task_type: TaskType, context: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    params = task_type.params.model_validate(payload)
    assert task_type.handler is not None
    if inspect.iscoroutinefunction(task_type.handler):
        return dict(await task_type.handler(context, params))
    return dict(await asyncio.to_thread(task_type.handler, context, params))  # type: ignore[arg-type]


# Code analysis ---------------------------------------------------------------------------------------------

# The API reads bodies of about 256 KB at most, which this leaves room within.
MAX_SOURCE_CHARS = 100_000
COMPLEXITY_WARNING = 10
MAX_LISTED = 500
_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.With, ast.AsyncWith, ast.IfExp,
             ast.comprehension, ast.Assert, ast.match_case)


class CodeAnalysisParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS, description="Python source code")
    filename: str = Field(default="<source>", max_length=255)


def _complexity(node: ast.AST) -> int:
    """Return the cyclomatic complexity of a function: one plus its decision points."""
    score = 1
    for child in ast.walk(node):
        if isinstance(child, _BRANCHES):
            score += 1
        elif isinstance(child, ast.BoolOp):
            score += len(child.values) - 1
    return score


def _findings(tree: ast.AST) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            found.append({"line": node.lineno, "rule": "bare-except",
                          "message": "a bare except also catches KeyboardInterrupt and SystemExit"})
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
            found.append({"line": node.lineno, "rule": "eval-exec",
                          "message": f"{node.func.id}() runs arbitrary code"})
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                if isinstance(default, (ast.List, ast.Dict, ast.Set)):
                    found.append({"line": default.lineno, "rule": "mutable-default",
                                  "message": f"{node.name}() has a mutable default argument, shared between calls"})
            complexity = _complexity(node)
            if complexity > COMPLEXITY_WARNING:
                found.append({"line": node.lineno, "rule": "complexity",
                              "message": f"{node.name}() has a cyclomatic complexity of {complexity}"})
    return sorted(found, key=lambda item: item["line"])


@register_task_type("code_analysis", CodeAnalysisParams,
                    "Python source in; functions, classes, imports, complexity and findings out")
def code_analysis(_context: TaskContext, params: CodeAnalysisParams) -> dict[str, Any]:
    try:
        return _analyse(params)
    except (RecursionError, MemoryError) as error:
        # Deeply nested source exhausts the parser or the walk; no retry would fare better.
        raise TaskRejected(f"{params.filename} is nested too deeply to analyse") from error


def _analyse(params: CodeAnalysisParams) -> dict[str, Any]:
    try:
        tree = ast.parse(params.source, filename=params.filename)
    except (SyntaxError, ValueError) as error:
        raise TaskRejected(f"{params.filename} is not valid Python: {error}") from error
    functions = [
        {"name": node.name, "line": node.lineno, "end_line": node.end_lineno, "arguments": len(node.args.args),
         "async": isinstance(node, ast.AsyncFunctionDef), "complexity": _complexity(node)}
        for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    classes = [
        {"name": node.name, "line": node.lineno, "bases": [ast.unparse(base) for base in node.bases],
         "methods": [item.name for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]}
        for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
    ]
    imports = sorted({alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
                     | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module})
    findings = _findings(tree)
    # Bounded, because Temporal refuses results over 2 MB.
    return {
        "lines": len(params.source.splitlines()), "functions": functions[:MAX_LISTED],
        "classes": classes[:MAX_LISTED], "imports": imports[:MAX_LISTED],
        "max_complexity": max((f["complexity"] for f in functions), default=0), "findings": findings[:MAX_LISTED],
        "truncated": max(len(functions), len(classes), len(imports), len(findings)) > MAX_LISTED,
    }


# HTTP fetch ------------------------------------------------------------------------------------------------

class HttpFetchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    max_bytes: int | None = Field(default=None, ge=1, description="Default and upper bound: PAF_HTTP_MAX_RESPONSE_BYTES")
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)


@register_task_type("http_fetch", HttpFetchParams,
                    "GET a URL with size and time limits; private and local addresses are refused")
async def http_fetch(context: TaskContext, params: HttpFetchParams) -> dict[str, Any]:
    url = str(params.url)
    try:
        await asyncio.to_thread(check_address, urlsplit(url).hostname or "",
                                context.settings.http_allow_private_addresses)
    except ActionFailed as error:
        raise TaskRejected(str(error)) from error
    limit = min(params.max_bytes or context.settings.http_max_response_bytes, context.settings.http_max_response_bytes)
    started = time.monotonic()
    async with httpx.AsyncClient(follow_redirects=False, timeout=params.timeout_seconds) as client:
        try:
            async with client.stream("GET", url, headers={"User-Agent": "paf-core-agent-worker"}) as response:
                body = await read_limited(response, limit)
        except ResponseTooLarge as error:
            raise TaskRejected(str(error)) from error
        except httpx.HTTPError as error:
            raise TaskFailed(f"GET {url} failed: {error!r}") from error
    return {
        "status_code": response.status_code, "content_type": response.headers.get("content-type"),
        "bytes": len(body), "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
        "text": body.decode("utf-8", errors="replace")[:10_000],
    }


# LLM completion --------------------------------------------------------------------------------------------

class LLMCompleteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=32_000)
    system: str | None = Field(default=None, max_length=8_000)
    model: str | None = Field(default=None, min_length=1, max_length=100)
    max_tokens: int = Field(default=512, ge=1, le=8192)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, allow_inf_nan=False)


@register_task_type("llm_complete", LLMCompleteParams, "One model call on the worker's side")
async def llm_complete(context: TaskContext, params: LLMCompleteParams) -> dict[str, Any]:
    model = params.model or context.settings.default_model_name
    if context.settings.model_by_name(model) is None:
        raise TaskRejected(f"model {model!r} is not configured on this worker")
    messages = ([ChatMessage("system", params.system)] if params.system else []) + [ChatMessage("user", params.prompt)]
    try:
        completion = await context.providers.get(model).complete(
            CompletionRequest(messages=messages, max_tokens=params.max_tokens, temperature=params.temperature))
    except ProviderError as error:
        raise TaskFailed(f"model {model!r} failed: {error}") from error
    return {"model": model, "text": completion.text, "usage": completion.usage.as_dict(),
            "finish_reason": completion.finish_reason}
