"""Mapping of errors to HTTP responses, in one place.

Every error body has `detail` and a readable `message`. Validation errors
list each failing field without echoing the input back, since the input may
be huge or hold values (NaN, lone surrogates) that JSON cannot carry.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class BodyTooLargeError(HTTPException):
    """The request body grew past the limit while it was being read.

    An HTTPException, because FastAPI turns any other error raised while it
    reads the body into a 400.
    """

    def __init__(self, max_bytes: int) -> None:
        message = f"request body is more than {max_bytes} bytes; the limit is {max_bytes}"
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, message)


class BodySizeLimitMiddleware:
    """Respond with 413 to a body over the limit: at once from Content-Length, else while reading a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> JSONResponse:
        message = f"request body is {size} bytes; the limit is {self.max_bytes}"
        return JSONResponse(status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                            content={"detail": message, "message": message})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(str(int(length)))(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if response_started:
                raise
            await self._too_large(f"more than {self.max_bytes}")(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ConversationNotFoundError, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(RunNotFoundError, _not_found)  # type: ignore[arg-type]
