"""Mapping of domain errors to HTTP responses, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from db.chat import ConversationNotFoundError

logger = logging.getLogger(__name__)


def _field_path(location: tuple[object, ...] | list[object]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


def _describe(item: dict[str, object]) -> str:
    location = item.get("loc") or ()
    if item.get("type") == "json_invalid":
        # The location of a JSON syntax error is a character offset, not a field.
        position = location[-1] if location else "?"  # type: ignore[index]
        return f"body: invalid JSON at character {position}: {item.get('msg')}"
    return f"{_field_path(location)}: {item.get('msg')}"  # type: ignore[arg-type]


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    errors = error.errors()
    summary = "; ".join(_describe(item) for item in errors)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": jsonable_encoder(errors), "message": f"Invalid request: {summary}"},
    )


async def _not_found(_request: Request, error: ConversationNotFoundError) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(error)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ConversationNotFoundError, _not_found)  # type: ignore[arg-type]
