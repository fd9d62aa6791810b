"""Mapping of errors to HTTP responses, in one place.

Every error body has `detail` and a readable `message`. Validation errors
list each failing field without echoing the input back, since the input may
be huge or hold values (NaN, lone surrogates) that JSON cannot carry.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from db.chat import ConversationNotFoundError, RunNotFoundError

logger = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20


def _safe_text(value: object) -> str:
    # Lone surrogates cannot be encoded as UTF-8; show them escaped instead.
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _field_path(location: tuple[object, ...] | list[object]) -> str:
    return ".".join(_safe_text(part) for part in location if part != "body") or "body"


def _describe(item: dict[str, Any]) -> str:
    location = item.get("loc") or ()
    if item.get("type") == "json_invalid":
        # The location of a JSON syntax error is a character offset, not a field.
        position = location[-1] if location else "?"
        reason = (item.get("ctx") or {}).get("error", "")
        return f"body: invalid JSON at character {position}{': ' + _safe_text(reason) if reason else ''}"
    if item.get("type") == "model_attributes_type" and not location[1:]:
        return "body: expected a JSON object; send it with Content-Type: application/json"
    return f"{_field_path(location)}: {_safe_text(item.get('msg'))}"


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    shown = errors[:MAX_LISTED_ERRORS]
    detail = [
        {"loc": [_safe_text(part) for part in item.get("loc", ())], "msg": _safe_text(item.get("msg")),
         "type": item.get("type")}
        for item in shown
    ]
    summary = "; ".join(_describe(item) for item in shown)
    if len(errors) > len(shown):
        summary += f"; and {len(errors) - len(shown)} more"
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": detail, "message": f"Invalid request: {summary}"},
    )


async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    message = error.detail if isinstance(error.detail, str) else "Request failed"
    return JSONResponse(status_code=error.status_code, content={"detail": error.detail, "message": message},
                        headers=getattr(error, "headers", None))


async def _not_found(_request: Request, error: ConversationNotFoundError | RunNotFoundError) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(error), "message": str(error)})


class BodySizeLimitMiddleware:
    """Respond with 413 before reading a body whose Content-Length is over the limit.

    NOTE: a chunked body without Content-Length is not counted here; uvicorn
    still reads it whole before the route's own size checks run.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                message = f"request body is {int(length)} bytes; the limit is {self.max_bytes}"
                response = JSONResponse(status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                                        content={"detail": message, "message": message})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ConversationNotFoundError, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(RunNotFoundError, _not_found)  # type: ignore[arg-type]
