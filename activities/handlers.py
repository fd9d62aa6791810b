"""A registry of named handlers, each with a pydantic model that validates its parameters.

Job actions and worker task types are both kept in one: the API validates a
request's parameters with the model, and the worker runs the handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

ContextT = TypeVar("ContextT")
Handler = Callable[[ContextT, Any], Awaitable[dict[str, Any]] | dict[str, Any]]


@dataclass(frozen=True)
class Registered(Generic[ContextT]):
    name: str
    params: type[BaseModel]
    # None for entries that the workflow runs itself rather than a handler.
    handler: Handler[ContextT] | None
    description: str


class HandlerRegistry(dict[str, Registered[ContextT]]):
    """Named handlers of one kind, such as "action type" or "task type"."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str, params: type[BaseModel],
                 description: str = "") -> Callable[[Handler[ContextT]], Handler[ContextT]]:
        """Register the decorated function as `name`, whose parameters `params` validates."""

        def decorate(handler: Handler[ContextT]) -> Handler[ContextT]:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = Registered(name=name, params=params, handler=handler, description=description)
            return handler

        return decorate
